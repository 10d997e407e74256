"""Check the batch-cam gallery in a real headless browser and take a screenshot of it.

Builds a small demo output folder (generated overlay PNGs with awkward names, manifest rows
including failed inputs), writes ``index.html`` with :func:`camtool.batch.gallery.write_gallery`,
then runs headless Chromium with ``--dump-dom`` on a few URL hashes to verify that the script
ran, that every shown row has its ``<img>``, that ``#class=...``, ``#true=...`` and
``#result=wrong`` filter, ``#sort=...`` sorts and ``#q=...`` searches. Finally it saves a
screenshot to look at.

Usage (from the repository root)::

    .venv/bin/python benchmarks/gallery_screenshot.py [--out DIR] [--chromium PATH]

Needs Chromium (Debian: ``apt-get install chromium``). Exit status 0 when all checks pass.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from PIL import Image, ImageDraw

try:
    from camtool.batch.gallery import write_gallery
except ModuleNotFoundError:  # run from a checkout where camtool is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from camtool.batch.gallery import write_gallery

__all__ = [
    "DomSummary",
    "build_demo",
    "chromium_args",
    "dump_dom",
    "find_chromium",
    "main",
    "parse_dom",
    "take_screenshot",
    "verify_gallery",
]

_CHROMIUM_NAMES = ("chromium", "chromium-browser")
_TIMEOUT_S = 60.0

# (relative input path, class name, probability, colour); None class marks an error row.
_DEMO: tuple[tuple[str, str, float, tuple[int, int, int]], ...] = (
    ("shapes/circle_01.png", "circle", 0.97, (220, 60, 50)),
    ("shapes/circle_02.png", "circle", 0.64, (240, 140, 40)),
    ("shapes/square 03.png", "square", 0.88, (40, 120, 220)),
    ("shapes/square_04.png", "square", 0.51, (60, 170, 200)),
    ("odd names/a <b> & 'c' \"d\".png", "circle", 0.79, (200, 40, 160)),
    ("odd names/</script><b>x.png", "traffic light", 0.93, (250, 200, 30)),
    ("odd names/ünïcödé 猫 #1?.png", "square", 0.35, (70, 180, 90)),
    ("odd names/100% sure.png", "traffic light", 0.72, (120, 90, 200)),
)


@dataclass
class DomSummary:
    """What the checks need from a rendered page."""

    ready: bool = False
    img_srcs: list[str] = field(default_factory=list)
    cards: list[dict[str, str | None]] = field(default_factory=list)
    failures: int = 0

    @property
    def visible(self) -> list[dict[str, str | None]]:
        """The cards the script left visible, in page order."""
        return [card for card in self.cards if "hidden" not in card]


class _DomParser(HTMLParser):
    """Collect cards, images, failure rows and the ready flag from a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.summary = DomSummary()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        classes = (values.get("class") or "").split()
        if tag == "body":
            self.summary.ready = values.get("data-ready") == "1"
        elif tag == "img":
            self.summary.img_srcs.append(values.get("src") or "")
        elif tag == "figure" and "card" in classes:
            self.summary.cards.append(values)
        elif tag == "tr" and "failure" in classes:
            self.summary.failures += 1


def parse_dom(text: str) -> DomSummary:
    """Summarise a page (static or dumped by the browser).

    Args:
        text: the HTML.

    Returns:
        The cards, image sources, failure count and whether the script marked itself ready.
    """
    parser = _DomParser()
    parser.feed(text)
    parser.close()
    return parser.summary


def find_chromium() -> str | None:
    """Return the path of a Chromium binary on PATH, or None."""
    for name in _CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _overlay(path: Path, colour: tuple[int, int, int], size: tuple[int, int]) -> None:
    """Draw a fake CAM overlay: a dark square with a coloured hot spot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, (30, 34, 48))
    draw = ImageDraw.Draw(image)
    w, h = size
    for step in range(6, 0, -1):
        shade = tuple(int(c * (7 - step) / 6 + 30 * step / 6) for c in colour)
        r = step * min(w, h) // 14
        draw.ellipse((w // 2 - r, h // 2 - r, w // 2 + r, h // 2 + r), fill=shade)
    draw.rectangle((4, 4, w - 5, h - 5), outline=(255, 255, 255), width=2)
    image.save(path)


def build_demo(out_dir: Path, *, input_root: str = "/data/in") -> list[dict[str, Any]]:
    """Write demo overlays into ``out_dir`` and return manifest rows for them.

    The rows hold the ``ok`` inputs from the demo table (awkward names included), one more
    ``ok`` input whose class map is not the predicted class's, and three errors.

    Args:
        out_dir: the gallery folder; created if missing.
        input_root: the fake input folder the ``path`` fields start with.

    Returns:
        The manifest rows, in the order batch-cam would write them.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for number, (rel, cls, prob, colour) in enumerate(_DEMO):
        size = (320, 200) if number % 3 == 2 else (224, 224)
        _overlay(out_dir / rel, colour, size)
        right = number % 3 != 1  # every third prediction is wrong: its true class is another
        true_name = cls if right else ("circle" if cls != "circle" else "square")
        rows.append(
            {
                "path": f"{input_root}/{rel}",
                "output": rel,
                "status": "ok",
                "error": None,
                "pred_idx": number % 3,
                "pred_name": cls,
                "prob": prob,
                "class_idx": number % 3,
                "true_idx": number % 3 if right else (number + 1) % 3,
                "true_name": true_name,
                "peak": [112, 112],
                "box": [60, 60, 170, 170],
            }
        )
    _overlay(out_dir / "shapes/resumed.png", (150, 150, 150), (224, 224))
    rows.append(
        {
            "path": f"{input_root}/shapes/resumed.png",
            "output": "shapes/resumed.png",
            "status": "ok",
            "error": None,
            "pred_idx": 1,
            "pred_name": "square",
            "prob": 0.58,
            "class_idx": 0,
            "true_idx": None,
            "true_name": None,
            "peak": None,
            "box": None,
        }
    )
    empty = {"pred_idx": None, "pred_name": None, "prob": None, "class_idx": None}
    rows.append(
        {
            "path": f"{input_root}/notes.txt",
            "output": None,
            "status": "error",
            "error": "not an image",
            **empty,
            "peak": None,
            "box": None,
        }
    )
    for rel, reason in (
        ("broken/truncated.jpg", "cannot read image: image file is truncated"),
        ('broken/<evil> & "co".png', "cannot decode </script> <b>bold</b>"),
    ):
        rows.append(
            {
                "path": f"{input_root}/{rel}",
                "output": None,
                "status": "error",
                "error": reason,
                **empty,
                "peak": None,
                "box": None,
            }
        )
    return rows


def chromium_args(chromium: str, user_data_dir: Path) -> list[str]:
    """Return the headless Chromium command line shared by every run."""
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={user_data_dir}",
        "--window-size=1200,900",
        "--virtual-time-budget=3000",
    ]


def _run(args: Sequence[str], timeout: float) -> str:
    """Run Chromium; return its stdout or raise RuntimeError with its stderr tail."""
    try:
        done = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"chromium did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"chromium exited with {done.returncode}: {tail}")
    return done.stdout


def dump_dom(chromium: str, url: str, *, timeout: float = _TIMEOUT_S) -> str:
    """Load ``url`` headless and return the DOM after its scripts ran."""
    with tempfile.TemporaryDirectory(prefix="camtool-chromium-") as profile:
        return _run([*chromium_args(chromium, Path(profile)), "--dump-dom", url], timeout)


def take_screenshot(chromium: str, url: str, png: Path, *, timeout: float = _TIMEOUT_S) -> Path:
    """Load ``url`` headless and save a 1200x900 screenshot to ``png``."""
    with tempfile.TemporaryDirectory(prefix="camtool-chromium-") as profile:
        _run([*chromium_args(chromium, Path(profile)), f"--screenshot={png}", url], timeout)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot at {png}")
    return png


def _expect(condition: bool, message: str) -> None:
    """Raise AssertionError with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AssertionError(message)


def _shown_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Return the rows the gallery shows as cards."""
    return [r for r in rows if r["status"] == "ok" and r.get("output")]


def _result(row: Mapping[str, Any]) -> str:
    """``correct``, ``wrong``, or ``""`` for a row without a true class."""
    if row.get("true_idx") is None:
        return ""
    return "correct" if row.get("pred_idx") == row["true_idx"] else "wrong"


def verify_gallery(
    chromium: str,
    index: Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    full: bool = True,
) -> list[str]:
    """Check the gallery's script in headless Chromium.

    Args:
        chromium: the browser binary.
        index: the written ``index.html``.
        rows: the rows it was written from (must contain at least one ``circle``).
        full: also check the unfiltered page and the text search (two more browser runs).

    Returns:
        One line per check that passed.

    Raises:
        AssertionError: if a check fails.
        RuntimeError: if Chromium cannot be run.
    """
    shown = _shown_rows(rows)
    errors = [r for r in rows if r["status"] == "error"]
    passed: list[str] = []

    def load(**params: str) -> DomSummary:
        url = index.as_uri() + ("#" + urlencode(params) if params else "")
        summary = parse_dom(dump_dom(chromium, url))
        _expect(summary.ready, f"the gallery script did not run for {url}")
        _expect(
            len(summary.img_srcs) == len(shown),
            f"{len(summary.img_srcs)} <img> for {len(shown)} shown rows",
        )
        _expect(summary.failures == len(errors), f"{summary.failures} failures listed")
        return summary

    circles = sorted(float(r["prob"]) for r in shown if r.get("pred_name") == "circle")
    page = load(**{"class": "circle", "sort": "prob-asc"})
    visible = page.visible
    _expect(
        [c.get("data-class") for c in visible] == ["circle"] * len(circles),
        f"class filter shows {[c.get('data-class') for c in visible]}",
    )
    probs = [float(c.get("data-prob") or "nan") for c in visible]
    _expect(probs == circles, f"prob-asc order is {probs}, expected {circles}")
    passed.append(f"#class=circle&sort=prob-asc: {len(visible)} circle cards, ascending prob")

    wrong = [r["path"] for r in shown if _result(r) == "wrong"]
    got = [c.get("data-path") for c in load(result="wrong").visible]
    _expect(bool(wrong) and got == wrong, f"#result=wrong shows {got}, expected {wrong}")
    passed.append(f"#result=wrong: the {len(got)} wrong predictions")

    if full:
        page = load()
        _expect(len(page.visible) == len(shown), "unfiltered page hides cards")
        passed.append(f"unfiltered: {len(page.img_srcs)} <img> = {len(shown)} shown rows")
        page = load(q="ODD NAMES")
        wanted = [r["path"] for r in shown if "odd names" in str(r["path"]).lower()]
        got = [c.get("data-path") for c in page.visible]
        _expect(got == wanted, f"search shows {got}, expected {wanted}")
        passed.append(f"#q=ODD NAMES: {len(got)} cards, case-insensitive")
        page = load(sort="path-desc")
        paths = [str(c.get("data-path")) for c in page.visible]
        _expect(paths == sorted(paths, reverse=True), "path-desc is not descending")
        passed.append("#sort=path-desc: paths descending")
        wanted = [
            r["path"] for r in shown if r.get("true_name") == "circle" and _result(r) == "correct"
        ]
        got = [c.get("data-path") for c in load(**{"true": "circle", "result": "correct"}).visible]
        _expect(bool(wanted) and got == wanted, f"true class filter shows {got}, not {wanted}")
        passed.append(f"#true=circle&result=correct: {len(got)} cards")
    return passed


def main(argv: Sequence[str] | None = None) -> int:
    """Build the demo, check it in Chromium, save a screenshot; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=None, help="demo folder (default: a temp dir)")
    parser.add_argument("--chromium", default=None, help="Chromium binary (default: on PATH)")
    args = parser.parse_args(argv)
    chromium = args.chromium or find_chromium()
    if chromium is None:
        print("chromium not found; install it (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    out_dir: Path = args.out or Path(tempfile.mkdtemp(prefix="camtool-gallery-"))
    rows = build_demo(out_dir)
    index = write_gallery(out_dir, rows, title="camtool batch-cam demo", thumb_size=200)
    print(f"gallery: {index}")
    try:
        for line in verify_gallery(chromium, index, rows):
            print(f"ok  {line}")
        png = take_screenshot(chromium, index.as_uri(), out_dir / "screenshot.png")
        filtered = take_screenshot(
            chromium, index.as_uri() + "#class=square&sort=prob-desc", out_dir / "filtered.png"
        )
    except (AssertionError, RuntimeError) as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    print(f"screenshots: {png} {filtered}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
