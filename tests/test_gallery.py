"""Tests for camtool.batch.gallery: the batch-cam HTML gallery."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from camtool.batch.gallery import INDEX_NAME, overlay_href, write_gallery
from camtool.errors import CamtoolError, ConfigError, InputError

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
_NASTY = (
    "odd/a <b> & 'c' \"d\".png",
    "odd/</script><b>x.png",
    "odd/ünï 猫 #1?.png",
    "odd/100% sure.png",
    "with space/x y.png",
)


@dataclass
class Node:
    """A parsed element: tag, attributes, children (nodes or text)."""

    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        """All text below this node."""
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Node]:
        """This node and every element below it, in document order."""
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        """Elements with ``tag`` (and CSS class ``cls``)."""
        return [
            n
            for n in self.iter()
            if n.tag == tag and (cls is None or cls in (n.attrs.get("class") or "").split())
        ]

    def by_id(self, ident: str) -> Node:
        """The element with id ``ident``."""
        found = [n for n in self.iter() if n.attrs.get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
        return found[0]


class _TreeBuilder(HTMLParser):
    """Build a Node tree with the stdlib parser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(path: Path) -> Node:
    """Parse an HTML file into a Node tree."""
    builder = _TreeBuilder()
    builder.feed(path.read_text(encoding="utf-8"))
    builder.close()
    return builder.root


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)


def _row(output: str | None, status: str = "ok", **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "path": f"/in/{output}" if output else "/in/none.png",
        "output": output,
        "status": status,
        "error": None,
        "pred_idx": 0,
        "pred_name": "cat",
        "prob": 0.5,
        "class_idx": 0,
        "peak": [1, 1],
        "box": [0, 0, 2, 2],
    }
    row.update(extra)
    return row


@pytest.fixture
def nasty(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """A gallery folder whose overlays have awkward names, plus rows for them."""
    rows = []
    for number, rel in enumerate(_NASTY):
        _png(tmp_path / rel)
        rows.append(_row(rel, pred_name=["cat", "dog <&>"][number % 2], prob=0.1 * (number + 1)))
    return tmp_path, rows


def _srcs_and_hrefs(doc: Node) -> tuple[list[str], list[str]]:
    cards = doc.find_all("figure", "card")
    srcs = [str(card.find_all("img")[0].attrs["src"]) for card in cards]
    hrefs = [str(card.find_all("a")[0].attrs["href"]) for card in cards]
    return srcs, hrefs


def test_links_are_relative_and_point_at_the_overlays(
    nasty: tuple[Path, list[dict[str, Any]]],
) -> None:
    out_dir, rows = nasty
    index = write_gallery(out_dir, rows)
    assert index == out_dir / INDEX_NAME
    doc = parse(index)
    srcs, hrefs = _srcs_and_hrefs(doc)
    assert srcs == hrefs
    assert len(srcs) == len(rows)
    for src, row in zip(srcs, rows, strict=True):
        parts = urlsplit(src)
        assert (parts.scheme, parts.netloc) == ("", ""), src
        assert not src.startswith("/"), src
        assert (parts.query, parts.fragment) == ("", ""), src  # '#' and '?' stayed encoded
        target = out_dir / unquote(parts.path)
        assert target.is_file(), src
        assert target == out_dir / row["output"]
    assert all(img.attrs.get("loading") == "lazy" for img in doc.find_all("img"))


def test_nasty_names_are_escaped_and_shown_verbatim(
    nasty: tuple[Path, list[dict[str, Any]]],
) -> None:
    out_dir, rows = nasty
    rows.append({**_row(None, "error"), "path": '/in/<i>bad</i> & "q".png', "error": "</td>"})
    doc = parse(write_gallery(out_dir, rows, title="</title><script>alert(1)</script>"))
    assert len(doc.find_all("script")) == 1
    assert len(doc.find_all("b")) == 3  # the counts: ok, failed, total
    assert doc.find_all("i") == []
    assert "alert(1)" not in doc.find_all("script")[0].text()
    assert doc.find_all("title")[0].text() == "</title><script>alert(1)</script>"
    cards = doc.find_all("figure", "card")
    captions = [card.find_all("span", "path")[0].text() for card in cards]
    assert captions == [row["path"] for row in rows[:-1]]
    assert [card.attrs["data-path"] for card in cards] == captions
    assert [card.attrs["data-class"] for card in cards] == [r["pred_name"] for r in rows[:-1]]
    assert [card.find_all("img")[0].attrs["alt"] for card in cards] == captions
    failure = doc.by_id("failures").find_all("tr", "failure")[0]
    assert [td.text() for td in failure.find_all("td")] == [rows[-1]["path"], "</td>"]


def test_page_is_self_contained(nasty: tuple[Path, list[dict[str, Any]]]) -> None:
    out_dir, rows = nasty
    index = write_gallery(out_dir, rows)
    doc = parse(index)
    assert doc.find_all("link") == []
    assert all("src" not in script.attrs for script in doc.find_all("script"))
    assert doc.find_all("style")
    assert doc.find_all("script")[0].text().strip()
    text = index.read_text(encoding="utf-8")
    assert "http:" not in text
    assert "https:" not in text
    assert "//" not in text.replace("://", "")


def test_failures_section_lists_every_error_in_order(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    rows = [
        _row("a.png"),
        {**_row(None, "error"), "path": "/in/x.jpg", "error": "cannot read image"},
        {**_row(None, "error"), "path": "/in/y.jpg", "error": None},
    ]
    section = parse(write_gallery(tmp_path, rows)).by_id("failures")
    cells = [[td.text() for td in tr.find_all("td")] for tr in section.find_all("tr", "failure")]
    assert cells == [["/in/x.jpg", "cannot read image"], ["/in/y.jpg", "unknown error"]]
    assert "Failures (2)" in section.text()


def test_no_failures_says_so(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    section = parse(write_gallery(tmp_path, [_row("a.png")])).by_id("failures")
    assert section.find_all("tr", "failure") == []
    assert "No failures." in section.text()


def test_header_counts_each_status(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png"):
        _png(tmp_path / name)
    rows = [
        _row("a.png"),
        _row("b.png"),
        _row("c.png"),
        _row(None, "error", error="not an image"),
        _row(None, "error", error="boom"),
    ]
    doc = parse(write_gallery(tmp_path, rows))
    counts = {k: doc.by_id(f"count-{k}").text() for k in ("ok", "failed", "total")}
    assert counts == {"ok": "3", "failed": "2", "total": "5"}
    assert len(doc.find_all("img")) == 3  # rows without an overlay get no card
    # A skip is an event of one run, not an input's result: no such count.
    assert not [n for n in doc.iter() if n.attrs.get("id") == "count-skipped"]


def test_a_skipped_status_is_not_a_result(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="status 'skipped'; expected one of ok, error"):
        write_gallery(tmp_path, [_row(None, "skipped")])


def test_class_options_are_all_plus_the_classes_shown(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png", "d.png"):
        _png(tmp_path / name)
    rows = [
        _row("a.png", pred_name="zebra"),
        _row("b.png", pred_name="ant & <bee>"),
        _row("c.png", pred_name="zebra"),
        _row("d.png", pred_name=None, pred_idx=7),
        _row(None, "error", pred_name="never shown"),
    ]
    select = parse(write_gallery(tmp_path, rows)).by_id("class-filter")
    options = [(o.attrs["value"], o.text()) for o in select.find_all("option")]
    assert options == [
        ("", "all"),
        ("ant & <bee>", "ant & <bee>"),
        ("class 7", "class 7"),
        ("zebra", "zebra"),
    ]


def test_sort_options_cover_probability_and_path(tmp_path: Path) -> None:
    select = parse(write_gallery(tmp_path, [])).by_id("sort")
    values = {o.attrs["value"] for o in select.find_all("option")}
    assert {"prob-asc", "prob-desc", "path-asc", "path-desc"} <= values
    assert parse(tmp_path / INDEX_NAME).by_id("search").attrs["type"] == "search"


def test_probability_is_shown_as_percent_and_kept_exact(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    rows = [_row("a.png", prob=0.98765), _row("b.png", prob=None)]
    cards = parse(write_gallery(tmp_path, rows)).find_all("figure", "card")
    assert [c.find_all("span", "prob")[0].text() for c in cards] == ["98.8%", "n/a"]
    assert [c.attrs["data-prob"] for c in cards] == ["0.98765", ""]


def test_thumb_size_sets_the_css_size(tmp_path: Path) -> None:
    text = write_gallery(tmp_path, [], thumb_size=123).read_text(encoding="utf-8")
    assert "--thumb:123px" in text


@pytest.mark.parametrize("bad", [0, 31, 5000, True, 2.5])
def test_bad_thumb_size_is_a_config_error(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ConfigError, match="thumb_size"):
        write_gallery(tmp_path, [], thumb_size=bad)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"status": "ok", "output": "a.png"}, "no input path"),
        ({"path": "x", "status": "done"}, "status 'done'"),
        ({"path": "x", "status": "ok", "output": "../a.png"}, "not a path inside"),
        ({"path": "x", "status": "ok", "output": "/abs/a.png"}, "not a path inside"),
    ],
)
def test_bad_rows_are_input_errors_and_keep_the_old_page(
    tmp_path: Path, row: dict[str, Any], message: str
) -> None:
    old = tmp_path / INDEX_NAME
    old.write_text("old", encoding="utf-8")
    with pytest.raises(InputError, match=message):
        write_gallery(tmp_path, [row])
    assert old.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX_NAME]


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CamtoolError, match="does not exist"):
        write_gallery(tmp_path / "nope", [])


def test_rewrite_replaces_the_page_and_leaves_no_temp_files(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    write_gallery(tmp_path, [], title="first")
    index = write_gallery(tmp_path, [_row("a.png")], title="second")
    assert "second" in index.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", INDEX_NAME]
    assert index.stat().st_mode & 0o777 == 0o644


def test_overlay_href_encodes_each_segment() -> None:
    assert overlay_href("a b/c#1?.png") == "a%20b/c%231%3F.png"
    assert overlay_href("ü/100%.png") == "%C3%BC/100%25.png"
    assert overlay_href("./x:y&z.png") == "x%3Ay%26z.png"
    with pytest.raises(InputError):
        overlay_href("a/../../b.png")


def _load_benchmark() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gallery_screenshot.py"
    spec = importlib.util.spec_from_file_location("gallery_screenshot", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


_BENCH = _load_benchmark()
_find_chromium: Callable[[], str | None] = _BENCH.find_chromium


@pytest.mark.skipif(
    _find_chromium() is None and not os.environ.get("CAMTOOL_REQUIRE_BROWSER"),
    reason="chromium is not installed (Debian package: apt-get install chromium)",
)
def test_headless_chromium_renders_filters_and_sorts(tmp_path: Path) -> None:
    chromium = _find_chromium()
    assert chromium is not None
    rows = _BENCH.build_demo(tmp_path / "gallery")
    index = write_gallery(tmp_path / "gallery", rows)
    passed = _BENCH.verify_gallery(chromium, index, rows, full=True)
    assert len(passed) == 6
    assert any(line.startswith("#result=wrong") for line in passed)
