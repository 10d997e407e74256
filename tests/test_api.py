"""The Python API: camtool.load_model(...).explain(...), and the README example that shows it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import camtool
from camtool.core.checkpoint import load_checkpoint
from camtool.errors import ConfigError, InputError
from tests.conftest import TINY_CLASSES

README = Path(__file__).resolve().parents[1] / "README.md"


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def test_importing_camtool_does_not_import_torch() -> None:
    code = "import camtool, sys; print('torch' in sys.modules, callable(camtool.load_model))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_readme_example_runs(tiny_checkpoint: Path, in_tmp: Path) -> None:
    """The README's Python example, run as written against a checkpoint and a real photo."""
    from skimage import data as skimage_data

    (in_tmp / "checkpoints").mkdir()
    shutil.copy(tiny_checkpoint, in_tmp / "checkpoints" / "best.pt")
    Image.fromarray(skimage_data.astronaut()).resize((300, 200)).save(in_tmp / "photo.jpg")
    block = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None, "README has no api-example block"
    namespace: dict[str, object] = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    heat = namespace["heat"]
    assert isinstance(heat, np.ndarray) and heat.shape == (200, 300)


def test_explain_pil_images_of_mixed_sizes(tiny_checkpoint: Path) -> None:
    model = camtool.load_model(tiny_checkpoint, device="cpu")
    images = [_photo(48, 36, 0), _photo(30, 70, 1).convert("L")]
    result = model.explain(images, topk=2)
    assert result.logits.shape == (2, 3) and result.logits.dtype == np.float32
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert result.class_idx.shape == (2, 2)
    assert [h.shape for h in result.heatmaps] == [(2, 36, 48), (2, 70, 30)]
    for heat in result.heatmaps:
        assert heat.min() >= 0.0 and heat.max() <= 1.0
    for row, names in zip(result.class_idx, result.class_names, strict=True):
        assert names == [TINY_CLASSES[int(c)] for c in row]
    # the best class first, as the probabilities say
    assert (result.class_idx[:, 0] == result.probabilities.argmax(axis=1)).all()


def test_maps_average_to_the_logits(tiny_checkpoint: Path) -> None:
    """CAM's identity: the mean of the raw map of class c plus its bias is logit c."""
    model = camtool.load_model(tiny_checkpoint, device="cpu")
    result = model.explain(_photo(40, 40), topk=3)
    bias = load_checkpoint(tiny_checkpoint).model.fc.bias.detach().numpy()
    for k, c in enumerate(result.class_idx[0]):
        assert result.cams[0][k].mean() + bias[c] == pytest.approx(result.logits[0, c], abs=1e-4)


def test_explain_a_target_by_name_and_by_index(tiny_checkpoint: Path) -> None:
    model = camtool.load_model(tiny_checkpoint, device="cpu")
    by_name = model.explain(_photo(32, 32), target="dog")
    by_index = model.explain(_photo(32, 32), target=1)
    assert by_name.class_idx.tolist() == [[1]] and by_name.class_names == [["dog"]]
    np.testing.assert_array_equal(by_name.cams[0], by_index.cams[0])


def test_explain_a_tensor_at_its_own_size(tiny_checkpoint: Path) -> None:
    """A [0, 1] tensor is normalised with the model's mean/std and not resized."""
    model = camtool.load_model(tiny_checkpoint, device="cpu")
    pixels = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    result = model.explain(pixels)
    assert [h.shape for h in result.heatmaps] == [(1, 32, 48), (1, 32, 48)]
    loaded = load_checkpoint(tiny_checkpoint)
    mean = torch.tensor(loaded.mean).view(1, 3, 1, 1)
    std = torch.tensor(loaded.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = loaded.model.eval()((pixels - mean) / std)
    np.testing.assert_allclose(result.logits, expected.numpy(), atol=1e-4)
    single = model.explain(pixels[0])
    np.testing.assert_allclose(single.logits[0], result.logits[0], atol=1e-5)


def test_an_onnx_export_explains_like_its_checkpoint(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from camtool.export.exporter import export_model

    onnx_file = tmp_path / "tiny.onnx"
    export_model(tiny_checkpoint, output=onnx_file)
    photo = _photo(50, 40, 3)
    from_onnx = camtool.load_model(onnx_file).explain(photo, topk=2)
    from_torch = camtool.load_model(tiny_checkpoint, device="cpu").explain(photo, topk=2)
    assert from_onnx.class_idx.tolist() == from_torch.class_idx.tolist()
    np.testing.assert_allclose(from_onnx.logits, from_torch.logits, atol=1e-4)
    np.testing.assert_allclose(from_onnx.heatmaps[0], from_torch.heatmaps[0], atol=1e-3)


@pytest.mark.parametrize(
    ("images", "kwargs", "error", "message"),
    [
        ([], {}, InputError, "non-empty"),
        (["photo.jpg"], {}, InputError, "PIL image"),
        (torch.zeros(3, 32), {}, InputError, "(N, 3, H, W)"),
        (None, {"topk": 0}, ConfigError, "topk"),
        (None, {"target": "zebra"}, ConfigError, "zebra"),
    ],
)
def test_bad_calls_raise_camtools_errors(
    tiny_checkpoint: Path, images: object, kwargs: dict[str, object], error: type, message: str
) -> None:
    model = camtool.load_model(tiny_checkpoint, device="cpu")
    with pytest.raises(error, match=re.escape(message)):
        model.explain(_photo(32, 32) if images is None else images, **kwargs)


def test_a_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.pt"):
        camtool.load_model(tmp_path / "nope.pt")
