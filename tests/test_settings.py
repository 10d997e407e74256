"""Settings: layers, precedence, refusals by key path, TOML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from camtool.errors import ConfigError
from camtool.settings import load_settings, settings_to_toml
from camtool.settings_sources import drop_unset

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_mirror_the_reference() -> None:
    s = load_settings()
    assert s.model.arch == "resnet18"
    assert s.training.learning_rate == 0.001
    assert s.training.batch_size == 64
    assert s.training.optimizer.value == "adam"
    assert s.dataset.img_size == 160
    assert s.cam.colormap == "jet"


def test_shipped_imagenette_config_loads() -> None:
    s = load_settings(REPO / "configs" / "imagenette.toml")
    assert s.model.num_classes == 10
    assert s.training.scheduler.value == "reduce_lr"
    assert s.notes == []


OLD_CONFIG = """
[model]
name = "resnet_cam"
input_shape = [3, 160, 160]
residual = true
[training]
batch_size = 256
device = "cpu"
workers = 0
amp = false
"""


def test_an_old_config_loads_with_one_note_per_retired_key(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path / "old.toml", OLD_CONFIG))
    assert (s.runtime.device.value, s.runtime.workers, s.runtime.amp) == ("cpu", 0, False)
    assert s.training.batch_size == 256 and s.runtime.batch_size == 64  # not batch-cam's
    assert s.notes == [
        "model.name is retired and has no effect; remove it",
        "model.input_shape is retired and has no effect; remove it",
        "model.residual is retired and has no effect; remove it",
        "training.device is now runtime.device; rename it",
        "training.workers is now runtime.workers; rename it",
        "training.amp is now runtime.amp; rename it",
    ]
    assert "device" not in settings_to_toml(s).split("[runtime]")[0]


def test_a_retired_key_yields_to_its_new_key_and_to_higher_layers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    both = write(tmp_path / "both.toml", "[training]\nworkers = 0\n[runtime]\nworkers = 3\n")
    assert load_settings(both).runtime.workers == 3
    monkeypatch.setenv("CAMTOOL_TRAINING__WORKERS", "5")  # the old name in a higher layer
    s = load_settings(both)
    assert s.runtime.workers == 5 and "training.workers is now runtime.workers" in s.notes[0]


def test_precedence_flag_over_env_over_file_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write(
        tmp_path / "c.toml",
        "[training]\nbatch_size = 8\nlearning_rate = 0.5\nnum_epochs = 7\n",
    )
    monkeypatch.setenv("CAMTOOL_TRAINING__BATCH_SIZE", "16")
    monkeypatch.setenv("CAMTOOL_TRAINING__LEARNING_RATE", "0.25")
    s = load_settings(cfg, {"training": {"batch_size": 32, "learning_rate": None}})
    assert s.training.batch_size == 32  # flag beats env and file
    assert s.training.learning_rate == 0.25  # env beats file; the unset flag overrides nothing
    assert s.training.num_epochs == 7  # file beats default
    assert s.training.weight_decay == 0.0001  # default


def test_env_alone_reaches_nested_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMTOOL_CAM__ALPHA", "0.25")
    monkeypatch.setenv("CAMTOOL_MODEL__PRETRAINED", "false")
    s = load_settings()
    assert s.cam.alpha == 0.25
    assert s.model.pretrained is False


def test_every_offending_key_is_named(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "bad.toml",
        "[training]\nlearning_rate = -1\nbatch_size = 0\nbogus = 3\n"
        "[dataset]\nimg_size = 'big'\n[nonsense]\nx = 1\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    message = str(info.value)
    for path in (
        "training.learning_rate",
        "training.batch_size",
        "training.bogus: unknown key",
        "dataset.img_size",
        "nonsense: unknown key",
    ):
        assert path in message
    assert info.value.exit_code == 2


def test_bad_env_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMTOOL_TRAINING__OPTIMIZER", "rmsprop")
    with pytest.raises(ConfigError, match="training.optimizer"):
        load_settings()


def test_unknown_env_key_in_a_section_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMTOOL_TRAINING__LERNING_RATE", "0.1")
    with pytest.raises(
        ConfigError, match="CAMTOOL_TRAINING__LERNING_RATE: .* no key 'lerning_rate'"
    ):
        load_settings()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[model]\narch = 'vgg16'\n", "model.arch"),
        ("[model]\noutput_stride = 8\n", "model.output_stride"),
        ("[cam]\ncolormap = 'nope'\n", "cam.colormap"),
        ("[cam]\nalpha = 1.5\n", "cam.alpha"),
    ],
)
def test_out_of_range_values(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_settings(write(tmp_path / "c.toml", text))


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path / "broken.toml", "[training\n"))


def test_toml_round_trip(tmp_path: Path) -> None:
    s = load_settings(None, {"training": {"batch_size": 3}, "cam": {"colormap": "viridis"}})
    again = load_settings(write(tmp_path / "saved.toml", settings_to_toml(s)))
    assert again == s


def test_drop_unset() -> None:
    assert drop_unset({"a": None, "b": {"c": None, "d": 0}, "e": {"f": None}}) == {"b": {"d": 0}}
