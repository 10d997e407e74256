"""Issue 11, classes: a class spec is never silently taken for another class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from camtool.cli import app
from camtool.core.checkpoint import save_checkpoint
from camtool.core.maps import resolve_class
from camtool.core.model import CAMNet
from camtool.errors import ConfigError
from tests.conftest import make_photo

cli = CliRunner()
NUMBERED = sorted(str(i) for i in range(1, 13))  # "1", "10", "11", "12", "2", ... as folders sort


@pytest.mark.parametrize(
    ("spec", "index"),
    [
        ("12", 3),  # a name; index 12 does not exist
        ("name:2", 4),
        ("index:2", 2),
        ("#2", 2),
        ("name:11", 2),
        ("index:11", 11),
        (" #0 ", 0),
    ],
)
def test_numbered_classes_are_chosen_as_written(spec: str, index: int) -> None:
    assert resolve_class(spec, NUMBERED) == index


@pytest.mark.parametrize("spec", ["2", "1", "11", "9"])
def test_a_number_that_is_a_name_and_another_index_is_refused(spec: str) -> None:
    with pytest.raises(ConfigError, match=rf"ambiguous.*say name:{spec} or index:{spec}") as info:
        resolve_class(spec, NUMBERED)
    assert info.value.exit_code == 2


def test_plain_names_and_indices() -> None:
    names = ["cat", "dog", "golf ball"]
    assert resolve_class("DOG", names) == 1 and resolve_class("2", names) == 2
    assert resolve_class(0, names) == 0
    assert resolve_class("0", ["0", "1"]) == 0  # the name and the index agree


def test_unknown_class_lists_the_closest_names() -> None:
    names = ["golf ball", "golden retriever", "tench", "church"]
    with pytest.raises(ConfigError, match=r"unknown class 'golf'; closest: 'golf ball'"):
        resolve_class("golf", names)
    with pytest.raises(ConfigError, match=r"unknown class 'zzz'; the classes are 'golf ball'"):
        resolve_class("zzz", names)
    with pytest.raises(ConfigError, match="out of range 0..3"):
        resolve_class("index:4", names)
    with pytest.raises(ConfigError, match="whole number"):
        resolve_class("#x", names)


@pytest.fixture(scope="module")
def numbered_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("numbered") / "m.pt"
    save_checkpoint(path, CAMNet("resnet18", 12), class_names=NUMBERED, img_size=32)
    return path


def test_cam_explains_the_class_named_12(in_tmp: Path, numbered_model: Path) -> None:
    image = make_photo(in_tmp / "x.png")
    args = ["cam", str(image), "--model", str(numbered_model), "--device", "cpu", "--json"]
    result = cli.invoke(app, [*args, "--class", "12"])
    assert result.exit_code == 0, result.output
    target = json.loads(result.stdout)["images"][0]["target"]
    assert (target["index"], target["name"]) == (3, "12")
    result = cli.invoke(app, [*args, "--class", "name:2"])
    assert json.loads(result.stdout)["images"][0]["target"]["name"] == "2"


def test_cam_and_batch_cam_refuse_an_ambiguous_class(in_tmp: Path, numbered_model: Path) -> None:
    image = make_photo(in_tmp / "pics" / "x.png")
    for command in (["cam", str(image)], ["batch-cam", str(in_tmp / "pics")]):
        result = cli.invoke(app, [*command, "--model", str(numbered_model), "--class", "2"])
        assert result.exit_code == 2
        assert result.stderr.strip().splitlines() == [
            "camtool: error: class '2' is ambiguous: the class named '2' has index 4, and index 2"
            " is '11'; say name:2 or index:2"
        ]


def test_the_python_api_follows_the_same_rules(numbered_model: Path) -> None:
    from PIL import Image

    import camtool

    model = camtool.load_model(numbered_model, device="cpu")
    image = Image.new("RGB", (40, 40), (90, 20, 200))
    with pytest.raises(ConfigError, match="ambiguous"):
        model.explain(image, target="2")
    assert model.explain(image, target="12").class_idx.tolist() == [[3]]
