"""The inline stylesheet and script of the batch-cam gallery (:mod:`camtool.batch.gallery`).

The script filters the cards by predicted class (``data-class``), true class (``data-true``),
result (``data-result``: ``correct`` or ``wrong``, empty when the true class is unknown) and a
text search on the path, sorts them, and keeps the view in the URL's hash (``class``, ``true``,
``result``, ``sort``, ``q``).
"""

from __future__ import annotations

__all__ = ["CSS", "JS"]

CSS = """
:root{--thumb:%(thumb)dpx;color-scheme:light dark;}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 background:#f4f5f7;color:#1d1f23}
header{position:sticky;top:0;z-index:1;background:#fff;border-bottom:1px solid #d8dbe0;
 padding:10px 16px;display:flex;flex-wrap:wrap;gap:8px 20px;align-items:center}
h1{font-size:18px;margin:0}
h2{font-size:16px;margin:24px 0 8px}
.counts{display:flex;gap:12px;color:#555}
.counts b{color:#1d1f23}
.counts .failed b{color:#b42318}
.controls{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;margin-left:auto}
.controls label{display:flex;gap:6px;align-items:center}
select,input{font:inherit;padding:3px 6px;border:1px solid #b9bec7;border-radius:4px;
 background:#fff;color:inherit}
main{padding:16px}
#grid{display:grid;gap:14px;
 grid-template-columns:repeat(auto-fill,minmax(var(--thumb),1fr))}
[hidden]{display:none!important}
.card{margin:0;background:#fff;border:1px solid #d8dbe0;border-radius:6px;overflow:hidden;
 display:flex;flex-direction:column}
.thumb{display:block;background:#e9ebef}
.thumb img{display:block;width:100%%;height:var(--thumb);object-fit:contain}
figcaption{padding:6px 8px;display:flex;flex-direction:column;gap:2px}
.label{display:flex;gap:6px;align-items:baseline;font-weight:600}
.cls{overflow-wrap:anywhere}
.prob{margin-left:auto;font-variant-numeric:tabular-nums;color:#2b5fb4}
.note{font-size:12px;color:#7a5a00}
.card .path{font-size:12px;color:#555;overflow-wrap:anywhere}
.truth{font-size:12px;color:#1f7a3a}
.card[data-result="wrong"]{border-color:#b42318;box-shadow:0 0 0 1px #b42318}
.card[data-result="wrong"] .truth{color:#b42318;font-weight:600}
.muted{color:#777}
table{border-collapse:collapse;width:100%%;background:#fff;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e3e5e9;vertical-align:top}
td{overflow-wrap:anywhere}
td.reason{color:#b42318}
@media (prefers-color-scheme:dark){
 body{background:#17191c;color:#e6e7e9}
 header,.card,table,select,input{background:#22252a;border-color:#3a3f47}
 .counts{color:#aaa}.counts b{color:#e6e7e9}
 .thumb{background:#2c3036}.card .path,.muted{color:#a3a7ad}.prob{color:#7fb0ff}
 th,td{border-color:#3a3f47}
}
"""

JS = """
(function () {
  "use strict";
  var grid = document.getElementById("grid");
  var classSel = document.getElementById("class-filter");
  var trueSel = document.getElementById("true-filter");
  var resultSel = document.getElementById("result-filter");
  var sortSel = document.getElementById("sort");
  var search = document.getElementById("search");
  var shown = document.getElementById("shown-count");
  var empty = document.getElementById("empty");
  var cards = Array.prototype.slice.call(grid.querySelectorAll(".card"));
  var info = cards.map(function (el, i) {
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
  function hasOption(sel, value) {
    for (var i = 0; i < sel.options.length; i++) {
      if (sel.options[i].value === value) { return true; }
    }
    return false;
  }
  function readUrl() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    var query = new URLSearchParams(location.search);
    function get(key) { return params.has(key) ? params.get(key) : query.get(key); }
    var cls = get("class"), sort = get("sort"), q = get("q");
    var truth = get("true"), result = get("result");
    classSel.value = cls !== null && hasOption(classSel, cls) ? cls : "";
    trueSel.value = truth !== null && hasOption(trueSel, truth) ? truth : "";
    resultSel.value = result !== null && hasOption(resultSel, result) ? result : "";
    sortSel.value = sort !== null && hasOption(sortSel, sort) ? sort : "order";
    search.value = q !== null ? q : "";
  }
  function writeUrl() {
    var params = new URLSearchParams();
    if (classSel.value) { params.set("class", classSel.value); }
    if (trueSel.value) { params.set("true", trueSel.value); }
    if (resultSel.value) { params.set("result", resultSel.value); }
    if (sortSel.value !== "order") { params.set("sort", sortSel.value); }
    if (search.value) { params.set("q", search.value); }
    var text = params.toString();
    try {
      history.replaceState(null, "", text ? "#" + text : location.pathname + location.search);
    } catch (e) { /* some browsers refuse for file: URLs; the view still works */ }
  }
  function apply() {
    var cls = classSel.value, q = search.value.trim().toLowerCase();
    var truth = trueSel.value, result = resultSel.value;
    var sorted = info.slice().sort(sorters[sortSel.value] || sorters.order);
    var frag = document.createDocumentFragment(), n = 0;
    sorted.forEach(function (c) {
      var visible = (!cls || c.cls === cls) && (!q || c.low.indexOf(q) !== -1) &&
        (!truth || c.truth === truth) && (!result || c.result === result);
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
  classSel.addEventListener("change", changed);
  trueSel.addEventListener("change", changed);
  resultSel.addEventListener("change", changed);
  sortSel.addEventListener("change", changed);
  search.addEventListener("input", changed);
  window.addEventListener("hashchange", function () { readUrl(); apply(); });
  readUrl();
  apply();
  document.body.setAttribute("data-ready", "1");
})();
"""
