"""What a user reads: help pages, usage errors and settings errors, through CliRunner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from camtool.cli import app
from camtool.cli._app import COMMAND_ORDER
from camtool.textio import tidy_numbers

runner = CliRunner()
WIDTH = 80


def help_text(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], terminal_width=WIDTH)
    assert result.exit_code == 0
    return result.stdout


def test_commands_are_listed_in_the_order_a_user_meets_them() -> None:
    text = help_text()
    listed = re.findall(r"^  ([a-z-]+)  ", text.split("Commands:")[1], flags=re.M)
    assert tuple(listed) == COMMAND_ORDER
    assert COMMAND_ORDER[:3] == ("demo", "download", "train")
    assert "..." not in text.split("Commands:")[1]  # summaries are whole


@pytest.mark.parametrize("command", COMMAND_ORDER)
def test_help_shows_no_internal_types_and_unwrapped_examples(command: str) -> None:
    text = help_text(command)
    usage = text.splitlines()[0]
    assert "{" not in usage and "<" not in usage
    for internal in ("<list[", "<int", "<float", "<str>", "<path>", "<file>", "<boolean>"):
        assert internal not in text, (command, internal)
    assert all(len(line) <= WIDTH for line in text.splitlines())
    block = text.split("Example")[1].split("\n\n")[0].splitlines()[1:]
    assert block, "every command has an example"
    for line in block:  # each example is one whole line: none wrapped inside a path
        assert re.match(r"^    (camtool|find|cd|CAMTOOL_)", line), (command, line)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--optimizer", "rmsprop"], "'rmsprop' is not one of 'adam', 'adamw', 'sgd'"),
        (["train", "--scheduler", "step"], "'step' is not one of 'reduce_lr', 'cosine'"),
        (["cam", "x.jpg", "--device", "tpu"], "'tpu' is not one of 'auto', 'cpu', 'cuda', 'mps'"),
        (["batch-cam", "x", "--format", "gif"], "'gif' is not one of 'png', 'jpg'"),
        (["eval", "-m", "x.pt", "--split", "test"], "'test' is not one of 'val', 'train'"),
        (["export", "-m", "x.pt", "--format", "tflite"], "'tflite' is not one of"),
        (["download", "--dataset", "mnist"], "'mnist' is not one of 'imagenette-160'"),
        (["train", "--epochs", "many"], "invalid value for '--epochs'"),
        (["train", "--bogus"], "no such option: --bogus (see camtool train --help)"),
        (["bogus"], "no such command 'bogus' (see camtool --help)"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], needle: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("camtool: error: ") and needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Usage:" not in result.output and "Value error" not in result.output


def test_settings_errors_name_the_flag_typed(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["train", "--epochs", "0", "--lr", "-1"])
    assert result.exit_code == 2
    assert "--epochs: Input should be greater than or equal to 1 (got 0)" in result.stderr
    assert "--lr: " in result.stderr and "training." not in result.stderr
    monkeypatch.setenv("CAMTOOL_TRAINING__NUM_EPOCHS", "0")  # not a flag: named by its key
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2
    assert "training.num_epochs (CAMTOOL_TRAINING__NUM_EPOCHS):" in result.stderr
    (in_tmp / "c.toml").write_text("[dataset]\nval_size = 1.5\n")
    result = runner.invoke(app, ["config", "--config", "c.toml"])
    assert "dataset.val_size: must be a count from 1 to 100000000 or a fraction" in result.stderr
    assert "Value error" not in result.stderr


def test_val_size_flag_takes_a_count_or_a_fraction(in_tmp: Path) -> None:
    from camtool.settings import load_settings

    assert load_settings().dataset.val_size == 0.1
    assert load_settings(None, {"dataset": {"val_size": 25.0}}).dataset.val_size == 25
    result = runner.invoke(app, ["train", "--val-size", "0"])
    assert result.exit_code == 2
    assert "--val-size: must be a count from 1 to 100000000 or a fraction" in result.stderr


def test_json_numbers_are_rounded_to_what_they_mean() -> None:
    doc = {
        "probability": 0.41999999999999993,
        "loss": 1.234567,
        "lr": 0.000312345,
        "seconds": 12.3456,
        "images_per_s": 99.999,
        "max_diff": 2.345678e-07,
        "peak": [3, 4],
        "nan": float("nan"),
        "nested": [{"top1": 0.1 + 0.2}],
    }
    assert tidy_numbers(doc) == {
        "probability": 0.42,
        "loss": 1.2346,
        "lr": 0.0003123,
        "seconds": 12.35,
        "images_per_s": 100.0,
        "max_diff": 2.346e-07,
        "peak": [3, 4],
        "nan": None,
        "nested": [{"top1": 0.3}],
    }
    assert json.dumps(tidy_numbers(doc))  # valid JSON: no NaN


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["eval", "-m", "nope.pt"], "camtool: error: checkpoint not found: nope.pt\n"),
        (["export", "-m", "nope.pt"], "camtool: error: checkpoint not found: nope.pt\n"),
    ],
)
def test_errors_outside_a_terminal_are_exactly_one_line(
    in_tmp: Path, args: list[str], line: str
) -> None:
    result = runner.invoke(app, args)  # CliRunner's stderr is not a terminal: no bar residue
    assert result.exit_code == 1 and result.stderr == line
