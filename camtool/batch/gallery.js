/* camtool batch-cam gallery: filters by class, true class, result and path; sorting; the view
   is kept in the URL (index.html#class=cat&sort=prob-desc). */
(function () {
  "use strict";
  function byId(id) { return document.getElementById(id); }
  var grid = byId("grid"), sortSel = byId("sort"), search = byId("search");
  var shown = byId("shown-count"), empty = byId("empty");
  var filters = [  /* [URL key, select, field of a card] */
    ["class", byId("class-filter"), "cls"],
    ["true", byId("true-filter"), "truth"],
    ["result", byId("result-filter"), "result"]
  ];
  var info = Array.prototype.map.call(grid.querySelectorAll(".card"), function (el, i) {
    var p = el.getAttribute("data-prob");
    var path = el.getAttribute("data-path") || "";
    return {el: el, order: i, cls: el.getAttribute("data-class"),
            truth: el.getAttribute("data-true") || "",
            result: el.getAttribute("data-result") || "",
            prob: p === "" ? NaN : parseFloat(p), path: path, low: path.toLowerCase()};
  });
  function byPath(a, b) {
    return a.path < b.path ? -1 : a.path > b.path ? 1 : a.order - b.order;
  }
  function byProb(dir) {
    return function (a, b) {
      var an = isNaN(a.prob), bn = isNaN(b.prob);
      if (an || bn) { return an && bn ? a.order - b.order : (an ? 1 : -1); }
      return a.prob !== b.prob ? dir * (a.prob - b.prob) : byPath(a, b);
    };
  }
  var sorters = {
    "order": function (a, b) { return a.order - b.order; },
    "prob-desc": byProb(-1),
    "prob-asc": byProb(1),
    "path-asc": byPath,
    "path-desc": function (a, b) { return byPath(b, a); }
  };
  function choose(sel, value, fallback) {
    var known = Array.prototype.some.call(sel.options, function (o) { return o.value === value; });
    sel.value = value !== null && known ? value : fallback;
  }
  function readUrl() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    var query = new URLSearchParams(location.search);
    function get(key) { return params.has(key) ? params.get(key) : query.get(key); }
    filters.forEach(function (f) { choose(f[1], get(f[0]), ""); });
    choose(sortSel, get("sort"), "order");
    search.value = get("q") !== null ? get("q") : "";
  }
  function writeUrl() {
    var params = new URLSearchParams();
    filters.forEach(function (f) { if (f[1].value) { params.set(f[0], f[1].value); } });
    if (sortSel.value !== "order") { params.set("sort", sortSel.value); }
    if (search.value) { params.set("q", search.value); }
    var text = params.toString();
    try {
      history.replaceState(null, "", text ? "#" + text : location.pathname + location.search);
    } catch (e) { /* some browsers refuse for file: URLs; the view still works */ }
  }
  function apply() {
    var q = search.value.trim().toLowerCase();
    var sorted = info.slice().sort(sorters[sortSel.value] || sorters.order);
    var frag = document.createDocumentFragment(), n = 0;
    sorted.forEach(function (c) {
      var visible = (!q || c.low.indexOf(q) !== -1) && filters.every(function (f) {
        return !f[1].value || c[f[2]] === f[1].value;
      });
      c.el.hidden = !visible;
      if (visible) { n++; }
      frag.appendChild(c.el);
    });
    grid.appendChild(frag);
    shown.textContent = n + " of " + info.length;
    empty.hidden = n !== 0;
    document.body.setAttribute("data-shown", String(n));
  }
  function changed() { writeUrl(); apply(); }
  filters.forEach(function (f) { f[1].addEventListener("change", changed); });
  sortSel.addEventListener("change", changed);
  search.addEventListener("input", changed);
  window.addEventListener("hashchange", function () { readUrl(); apply(); });
  readUrl();
  apply();
  document.body.setAttribute("data-ready", "1");
})();
