"""A self-contained HTML gallery of batch-cam's overlays (``gallery.css``, ``gallery.js`` inlined,
thumbnails linked relatively); the script filters and sorts the cards by their ``data-``
attributes and keeps the view in the URL (``index.html#class=cat&sort=prob-desc``)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from camtool.batch.manifest import STATUSES
from camtool.errors import CamtoolError, ConfigError, InputError
from camtool.fsutil import atomic_write_text, writing
from camtool.textio import unicode_text

__all__ = ["INDEX_NAME", "overlay_href", "write_gallery"]

INDEX_NAME = "index.html"

_MIN_THUMB = 32
_MAX_THUMB = 2048


def overlay_href(output: str) -> str:
    """The relative URL (to HTML-escape) of an overlay path inside the gallery folder, each segment
    percent-encoded; an ``InputError`` if the path is empty, absolute, or climbs out with ``..``."""
    native = Path(output)
    parts = native.parts
    if not parts or native.is_absolute() or native.drive or native.root or ".." in parts:
        raise InputError(f"overlay path {output!r} is not a path inside the gallery folder")
    return "/".join(quote(part, safe="") for part in parts)


def _text(value: Any) -> str | None:
    return None if value is None else unicode_text(str(value)) or None


def _card(row: Mapping[str, Any], path: str, href: str) -> tuple[str, str, str | None]:
    """An ``ok`` row's card, predicted class name and true class name (or None)."""
    prob = row.get("prob")
    if isinstance(prob, bool) or not isinstance(prob, int | float) or not math.isfinite(prob):
        prob_attr, prob_text = "", "n/a"
    else:
        prob_attr, prob_text = repr(float(prob)), f"{float(prob) * 100:.1f}%"
    pred_idx, class_idx = row.get("pred_idx"), row.get("class_idx")
    fallback = f"class {pred_idx}" if pred_idx is not None else "unknown"
    name = _text(row.get("pred_name")) or fallback
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
    """The cards, each failure's ``(path, reason)``, each status's count; an ``InputError`` for a
    malformed row."""
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


_SORTS = (
    ("order", "manifest order"),
    ("prob-desc", "probability \u2193"),
    ("prob-asc", "probability \u2191"),
    ("path-asc", "path A\u2192Z"),
    ("path-desc", "path Z\u2192A"),
)


def _options(values: Sequence[str]) -> str:
    return '<option value="">all</option>' + "".join(
        f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values
    )


def _asset(name: str) -> str:
    return resources.files("camtool.batch").joinpath(name).read_text(encoding="utf-8")


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
    failed = f'<section id="failures"><h2>Failures ({len(failures)})</h2>'
    if failures:
        failed += "<table><thead><tr><th>Input</th><th>Reason</th></tr></thead><tbody>"
        failed += "".join(
            f'<tr class="failure"><td class="path">{html.escape(path)}</td>'
            f'<td class="reason">{html.escape(reason)}</td></tr>'
            for path, reason in failures
        )
        failed += "</tbody></table></section>"
    else:
        failed += '<p class="muted">No failures.</p></section>'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        f"<style>:root{{--thumb:{thumb_size}px}}\n{_asset('gallery.css')}</style></head>\n"
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
        f"{failed}</main>\n"
        f"<script>{_asset('gallery.js')}</script>\n</body></html>\n"
    )


def write_gallery(
    out_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str = "camtool batch-cam",
    thumb_size: int = 256,
) -> Path:
    """Write ``out_dir/index.html``, a self-contained gallery of a batch-cam run; return its path.

    Each ``ok`` manifest row with an ``output`` (relative to ``out_dir``) becomes a card (overlay,
    predicted class, probability, path, true class and correct / wrong when known); ``error`` rows
    are listed under Failures. ``thumb_size``: thumbnail edge, CSS pixels (32 to 2048).

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
    with writing(target):
        atomic_write_text(target, page)
    return target
