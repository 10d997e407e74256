"""Every JSON and CSV camtool writes is valid UTF-8, also for file names that are not."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from camtool.cli import app
from camtool.textio import name_from_text, to_json, unicode_text
from tests.conftest import make_photo

cli = CliRunner()
RAW = b"caf\xe9 \xff.png"  # Latin-1 bytes: not UTF-8


@pytest.mark.parametrize(
    "raw", [RAW, b"\xc3\xa9t\xc3\xa9.png", b"plain.png", b"back\\xslash.png"[:4] + b".png"]
)
def test_names_round_trip_through_the_escaping(raw: bytes) -> None:
    text = unicode_text(os.fsdecode(raw))
    text.encode("utf-8")  # strict: valid Unicode
    assert os.fsencode(name_from_text(text)) == raw


def test_json_of_a_lone_surrogate_is_valid_utf8() -> None:
    json.loads(to_json({"a": "\ud800", "b": os.fsdecode(RAW)}, ensure_ascii=False).encode())


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "pics"
    make_photo(folder / "ok.png")
    good = make_photo(folder / "tmp.png")
    os.rename(os.fsencode(good), os.fsencode(folder) + b"/" + RAW)
    return folder


def test_batch_cam_manifests_of_a_non_utf8_name_are_utf8(
    odd_folder: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["batch-cam", str(odd_folder), "-m", str(tiny_checkpoint), "-o", str(out)]
    result = cli.invoke(app, [*args, "--quiet", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    lines = (out / "manifest.jsonl").read_bytes().decode("utf-8").splitlines()  # strict
    rows = [json.loads(line) for line in lines]
    names = {Path(row["path"]).name for row in rows}
    assert names == {"ok.png", "caf\\xe9 \\xff.png"} and {r["status"] for r in rows} == {"ok"}
    odd = next(row for row in rows if "\\xff" in row["path"])
    assert os.path.exists(os.fsencode(name_from_text(odd["path"])))  # maps back to the file
    (out / "manifest.csv").read_bytes().decode("utf-8")
    json.loads(result.stdout)
    again = cli.invoke(app, [*args, "--quiet", "--device", "cpu", "--json"])  # resumes
    assert json.loads(again.stdout)["skipped"] == 2, again.stdout


def test_cam_json_of_a_non_utf8_name_is_utf8(odd_folder: Path, tiny_checkpoint: Path) -> None:
    image = os.fsdecode(os.fsencode(odd_folder) + b"/" + RAW)
    result = cli.invoke(app, ["cam", image, "-m", str(tiny_checkpoint), "--json", "--device",
                              "cpu", "-o", str(odd_folder.parent / "maps")])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout_bytes.decode("utf-8"))
    assert doc["images"][0]["input"].endswith("caf\\xe9 \\xff.png")
