"""A self-contained HTML gallery of the overlays written by ``camtool batch-cam``.

The page needs no network: CSS and JS are inline, every thumbnail is the overlay file itself
behind a relative, percent-encoded link. Cards are static HTML with their class, probability,
path, true class and result in ``data-`` attributes; the script (:data:`JS`) filters them (by
predicted class, true class, correct / wrong, a search on the path) and sorts them (by
probability or path). The view is kept in the URL, e.g. ``index.html#class=cat&sort=prob-desc``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from camtool.batch.manifest import STATUSES
from camtool.errors import CamtoolError, ConfigError, InputError
from camtool.fsutil import atomic_write_text
from camtool.textio import unicode_text

__all__ = ["INDEX_NAME", "overlay_href", "write_gallery"]

INDEX_NAME = "index.html"

_MIN_THUMB = 32
_MAX_THUMB = 2048


def overlay_href(output: str) -> str:
    """The relative URL (to HTML-escape) of an overlay path relative to the gallery folder, each
    segment percent-encoded (``#``, ``?``, ``%``, ``&``, non-ASCII ... stay literal file names);
    an ``InputError`` if the path is empty, absolute, or climbs out with ``..``."""
    native = Path(output)
    parts = native.parts
    if not parts or native.is_absolute() or native.drive or native.root or ".." in parts:
        raise InputError(f"overlay path {output!r} is not a path inside the gallery folder")
    return "/".join(quote(part, safe="") for part in parts)


def _text(value: Any) -> str | None:
    """``value`` as valid Unicode text, or None for None/empty."""
    return None if value is None else unicode_text(str(value)) or None


def _card(row: Mapping[str, Any], path: str, href: str) -> tuple[str, str, str | None]:
    """The card of an ``ok`` row, its predicted class name and its true class name (or None)."""
    prob = row.get("prob")
    if isinstance(prob, bool) or not isinstance(prob, int | float) or not math.isfinite(prob):
        prob_attr, prob_text = "", "n/a"
    else:
        prob_attr, prob_text = repr(float(prob)), f"{float(prob) * 100:.1f}%"
    pred_idx, class_idx = row.get("pred_idx"), row.get("class_idx")
    name = _text(row.get("pred_name"))
    if name is None:
        name = f"class {pred_idx}" if pred_idx is not None else "unknown"
    note = ""
    if class_idx is not None and pred_idx is not None and class_idx != pred_idx:
        note = f'<span class="note">{html.escape(f"CAM of class {class_idx}")}</span>'
    true_idx, true_name, result, truth = row.get("true_idx"), None, "", ""
    if isinstance(true_idx, int) and not isinstance(true_idx, bool):
        true_name = _text(row.get("true_name")) or f"class {true_idx}"
        result = "correct" if pred_idx == true_idx else "wrong"
        truth = f'<span class="truth">true: {html.escape(true_name)} ({result})</span>'
    href, path, shown = html.escape(href), html.escape(path), html.escape(name)
    card = (
        f'<figure class="card" data-class="{shown}" data-prob="{prob_attr}"'
        f' data-path="{path}" data-status="ok"'
        f' data-true="{html.escape(true_name or "")}" data-result="{result}">'
        f'<a class="thumb" href="{href}" title="{path}">'
        f'<img src="{href}" loading="lazy" decoding="async" alt="{path}"></a>'
        f'<figcaption><span class="label"><span class="cls">{shown}</span>'
        f' <span class="prob">{prob_text}</span></span>{truth}{note}'
        f'<span class="path">{path}</span></figcaption></figure>'
    )
    return card, name, true_name


def _parse_rows(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[list[tuple[str, str, str | None]], list[tuple[str, str]], dict[str, int]]:
    """The cards (:func:`_card`), the ``(path, reason)`` of each failure, the count of each
    status; an ``InputError`` for a malformed row."""
    cards: list[tuple[str, str, str | None]] = []
    failures: list[tuple[str, str]] = []
    counts = dict.fromkeys(STATUSES, 0)
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise InputError(f"manifest row {number} is not an object")
        path = _text(row.get("path"))
        if path is None:
            raise InputError(f"manifest row {number} has no input path")
        status = row.get("status")
        if status not in STATUSES:
            raise InputError(
                f"manifest row {number} ({path}) has status {status!r}; expected one of "
                + ", ".join(STATUSES)
            )
        counts[status] += 1
        output = _text(row.get("output"))
        if status == "error":
            failures.append((path, _text(row.get("error")) or "unknown error"))
        elif output is not None:
            try:
                href = overlay_href(output)
            except InputError as exc:
                raise InputError(f"manifest row {number} ({path}): {exc}") from None
            cards.append(_card(row, path, href))
    return cards, failures, counts


def _render_failures(failures: list[tuple[str, str]]) -> str:
    head = f'<section id="failures"><h2>Failures ({len(failures)})</h2>'
    if not failures:
        return head + '<p class="muted">No failures.</p></section>'
    items = "".join(
        f'<tr class="failure"><td class="path">{html.escape(path)}</td>'
        f'<td class="reason">{html.escape(reason)}</td></tr>'
        for path, reason in failures
    )
    table = "<table><thead><tr><th>Input</th><th>Reason</th></tr></thead>"
    return f"{head}{table}<tbody>{items}</tbody></table></section>"


_SORTS = (
    ("order", "manifest order"),
    ("prob-desc", "probability \u2193"),
    ("prob-asc", "probability \u2191"),
    ("path-asc", "path A\u2192Z"),
    ("path-desc", "path Z\u2192A"),
)


def _options(values: Sequence[str]) -> str:
    """``<option>`` elements: "all" (the empty value), then each of ``values``."""
    return '<option value="">all</option>' + "".join(
        f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values
    )


def _render(
    cards: list[tuple[str, str, str | None]],
    failures: list[tuple[str, str]],
    counts: dict[str, int],
    title: str,
    thumb_size: int,
) -> str:
    class_options = _options(sorted({name for _card, name, _true in cards}))
    true_options = _options(sorted({true for _card, _name, true in cards if true is not None}))
    result_options = _options(["correct", "wrong"])
    sort_options = "".join(
        f'<option value="{value}">{html.escape(label)}</option>' for value, label in _SORTS
    )
    total = sum(counts.values())
    grid = "\n".join(card for card, _name, _true in cards)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        f"<style>{CSS % {'thumb': thumb_size}}</style></head>\n"
        f'<body data-shown="{len(cards)}"><header><h1>{html.escape(title)}</h1>'
        '<div class="counts">'
        f'<span class="ok"><b id="count-ok">{counts["ok"]}</b> ok</span>'
        f'<span class="failed"><b id="count-failed">{counts["error"]}</b> failed</span>'
        f'<span class="total"><b id="count-total">{total}</b> total</span></div>'
        '<div class="controls">'
        f'<label>Class <select id="class-filter">{class_options}</select></label>'
        f'<label>True class <select id="true-filter">{true_options}</select></label>'
        f'<label>Result <select id="result-filter">{result_options}</select></label>'
        f'<label>Sort <select id="sort">{sort_options}</select></label>'
        '<label>Search <input id="search" type="search" placeholder="path contains\u2026">'
        "</label>"
        f'<span class="muted">showing <span id="shown-count">{len(cards)} of {len(cards)}'
        "</span></span></div></header>\n"
        f'<main><div id="grid">\n{grid}\n</div>'
        '<p id="empty" class="muted" hidden>No overlay matches.</p>\n'
        f"{_render_failures(failures)}</main>\n"
        f"<script>{JS}</script>\n</body></html>\n"
    )


def write_gallery(
    out_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str = "camtool batch-cam",
    thumb_size: int = 256,
) -> Path:
    """Write ``out_dir/index.html``, a self-contained gallery of a batch-cam run; return its path.

    Each ``ok`` manifest row with an ``output`` (relative to ``out_dir``) becomes a card:
    thumbnail linking to the overlay, predicted class, probability, input path, and the true
    class with correct / wrong when the row has ``true_idx``. ``error`` rows are listed under
    Failures; the header counts both. ``thumb_size``: thumbnail edge, CSS pixels (32 to 2048).

    Raises:
        ConfigError: if ``thumb_size`` is out of range.
        InputError: if a row is malformed (no path, unknown status, output outside ``out_dir``).
        CamtoolError: if ``out_dir`` is not a folder or the page cannot be written.
    """
    if isinstance(thumb_size, bool) or not isinstance(thumb_size, int):
        raise ConfigError(f"thumb_size must be an integer, got {thumb_size!r}")
    if not _MIN_THUMB <= thumb_size <= _MAX_THUMB:
        raise ConfigError(
            f"thumb_size must be between {_MIN_THUMB} and {_MAX_THUMB} pixels, got {thumb_size}"
        )
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise CamtoolError(f"gallery folder {out_dir} does not exist or is not a folder")
    cards, failures, counts = _parse_rows(rows)
    page = _render(cards, failures, counts, title, thumb_size)
    target = out_dir / INDEX_NAME
    try:
        atomic_write_text(target, page)
    except OSError as exc:
        raise CamtoolError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


#: The page's stylesheet (``%(thumb)d``: the thumbnail edge in CSS pixels).
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

#: The page's script: filters by class, true class, result and path, sorting, the view in the URL.
JS = """
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
"""
