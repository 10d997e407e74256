"""Issue 11, settings and text: ranges before any work, misspelt variables, BOMs, encodings."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from typer.testing import CliRunner

from camtool.cli import app
from camtool.errors import ConfigError, InputError
from camtool.settings import SETTINGS_FILE, load_settings, write_settings
from camtool.textio import decode_text, path_lines

cli = CliRunner()

HUGE = 99999999999999999999999999


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("training", "batch_size", HUGE),
        ("training", "num_epochs", HUGE),
        ("training", "learning_rate", 1e6),
        ("training", "weight_decay", 5.0),
        ("runtime", "workers", 10_000),
        ("runtime", "batch_size", 0),
        ("training", "seed", 2**64),
        ("training", "log_every", HUGE),
        ("training", "save_every", 0),
        ("training", "early_stopping_patience", -1),
        ("dataset", "img_size", 100_000),
        ("dataset", "val_size", HUGE),
        ("model", "num_classes", HUGE),
        ("cam", "topk", 10**9),
        ("cam", "max_pixels", 2**40),
        ("cam", "alpha", float("nan")),
    ],
)
def test_every_numeric_setting_has_a_range(section: str, key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^invalid settings: {section}\.{key}: ") as info:
        load_settings(None, {section: {key: value}})
    assert info.value.exit_code == 2


def test_the_issue_example_fails_in_config_before_any_work(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[training]\nbatch_size = {HUGE}\n")
    result = cli.invoke(app, ["config", "--config", str(config)])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "training.batch_size: Input should be less than or equal to 65536" in line


def test_a_bad_value_names_its_flag(tmp_path: Path) -> None:
    args = ["train", "--data-dir", str(tmp_path), "--batch-size", str(HUGE), "--workers", "-1"]
    result = cli.invoke(app, args)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "--batch-size: Input should be less than or equal" in line
    assert "--workers: Input should be greater than or equal to 0" in line


def test_a_bad_value_names_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMTOOL_TRAINING__EPOCHS_X", "3")
    with pytest.raises(ConfigError, match="CAMTOOL_TRAINING__EPOCHS_X: \\[training\\] has no key"):
        load_settings()
    monkeypatch.delenv("CAMTOOL_TRAINING__EPOCHS_X")
    monkeypatch.setenv("CAMTOOL_TRAINING__NUM_EPOCHS", "0")
    with pytest.raises(ConfigError, match=r"training\.num_epochs \(CAMTOOL_TRAINING__NUM_EPOCHS\)"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("CAMTOOL_TRAINNG__BATCH_SIZE", "unknown section 'trainng' (did you mean training?)"),
        ("CAMTOOL_TRAINING__BATCH_SIZ", "did you mean CAMTOOL_TRAINING__BATCH_SIZE?"),
        ("CAMTOOL_TRAINING_BATCH_SIZE", "write CAMTOOL_TRAINING__BATCH_SIZE"),
        ("camtool_cam__topkk", "[cam] has no key 'topkk'"),
    ],
)
def test_misspelt_environment_variables_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, needle: str
) -> None:
    monkeypatch.setenv(name, "32")
    result = cli.invoke(app, ["config"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"camtool: error: environment variable {name}: ") and needle in line


def test_other_camtool_variables_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMTOOL_DEBUG", "0")
    monkeypatch.setenv("CAMTOOL_TRAINING__BATCH_SIZE", "8")
    assert load_settings().training.batch_size == 8


@pytest.mark.parametrize("bad", ["runs\nx", "runs\x00x", "runs\rx"])
def test_nul_and_line_breaks_in_paths_are_refused(bad: str) -> None:
    for section, key in (("training", "checkpoint_dir"), ("dataset", "data_dir")):
        with pytest.raises(ConfigError, match=rf"{section}\.{key}: a path cannot hold a"):
            load_settings(None, {section: {key: bad}})
    with pytest.raises(ConfigError, match=r"cam\.output_dir: a path cannot hold"):
        load_settings(None, {"cam": {"output_dir": bad}})


def test_toml_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    config = tmp_path / "win.toml"
    config.write_bytes(codecs.BOM_UTF8 + b"[training]\r\nbatch_size = 8\r\n")
    assert load_settings(config).training.batch_size == 8


def test_toml_in_utf16_is_refused_in_one_line(tmp_path: Path) -> None:
    utf16 = tmp_path / "utf16.toml"
    utf16.write_bytes("[cam]\ntopk = 3\n".encode("utf-16"))
    with pytest.raises(ConfigError, match=r"utf16.toml is not UTF-8 .*TOML files are UTF-8"):
        load_settings(utf16)


def test_undecodable_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes("[model]\nname = 'café'\n".encode("latin-1"))
    result = cli.invoke(app, ["config", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"camtool: error: config file {config} is not UTF-8 (bad byte at offset 19); TOML files"
        " are UTF-8: save it as UTF-8"
    )


def test_text_decoding_rules() -> None:
    assert decode_text(codecs.BOM_UTF8 + "é".encode(), "x") == "é"
    assert decode_text("é".encode("utf-16-be").join([codecs.BOM_UTF16_BE, b""]), "x") == "é"
    with pytest.raises(InputError, match="^x: cannot read text: not UTF-8"):
        decode_text(b"\xff\xfe"[1:] + b"abc", "x")


def test_path_lists_drop_the_bom_and_refuse_utf16() -> None:
    lines = [codecs.BOM_UTF8 + b"a.jpg\r\n", b"\n", b"b c.png\n", b"caf\xe9.jpg\n"]
    assert list(path_lines(lines, "stdin")) == ["a.jpg", "b c.png", "caf\udce9.jpg"]
    with pytest.raises(InputError, match="stdin: the path list is UTF-16"):
        list(path_lines(["a.jpg\n".encode("utf-16")], "stdin"))
    with pytest.raises(InputError, match="line 2 holds a NUL"):
        list(path_lines([b"a\n", b"b\x00c\n"], "stdin"))


def test_batch_cam_reads_a_path_list_with_a_bom(in_tmp: Path, tiny_checkpoint: Path) -> None:
    from tests.conftest import make_photo

    first = make_photo(in_tmp / "pics" / "a.png")
    second = make_photo(in_tmp / "pics" / "b.png", seed=1)
    listing = codecs.BOM_UTF8 + f"{first}\r\n{second}\r\n".encode()
    args = ["batch-cam", "-", "-m", str(tiny_checkpoint), "-o", str(in_tmp / "out"), "--json"]
    result = cli.invoke(app, [*args, "--device", "cpu", "--quiet"], input=listing)
    assert result.exit_code == 0, result.output
    assert '"ok": 2' in result.stdout


def test_a_retired_key_is_one_note_on_stderr_and_the_command_runs(tmp_path: Path) -> None:
    config = tmp_path / "old.toml"
    config.write_text("[training]\nworkers = 0\n")
    result = cli.invoke(app, ["config", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "camtool: note: training.workers is now runtime.workers; rename it"
    ]
    assert '"workers": 0' in result.stdout


@pytest.mark.parametrize(
    "name", ['say "hi"', "back\\slash", "tab\there", "bell\x07", "déjà vu ✓", "a'b", "x\x7fy"]
)
def test_saved_settings_read_back_unchanged_whatever_the_path(tmp_path: Path, name: str) -> None:
    settings = load_settings(None, {"cam": {"output_dir": tmp_path / name}})
    write_settings(tmp_path, settings)
    again = load_settings(tmp_path / SETTINGS_FILE)
    assert again.cam.output_dir == tmp_path / name
    assert again.model_dump() == settings.model_dump()
