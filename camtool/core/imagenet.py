"""Every fact camtool carries about the outside world, with its source (no torch import).

``tests/test_facts.py`` checks each against a source that ships with a dependency. Besides the
ImageNet statistics (sourced where they are defined):

* :data:`IMAGENETTE`: wnids from fast.ai's Imagenette README (torchvision's
  ``datasets.Imagenette`` lists the same), names from torchvision's ``meta["categories"]``,
  ImageNet-1k indices as timm's ``ImageNetInfo`` places the wnids.
* :data:`IMAGENETTE_ARCHIVES`: URL, file name, folder and md5 from torchvision's
  ``datasets.Imagenette``; sizes and sha256 from the FastAI.jl dataset registry, checked by
  ``camtool download`` on every download.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from camtool.errors import ConfigError

__all__ = [
    "IMAGENETTE",
    "IMAGENETTE_ARCHIVES",
    "IMAGENETTE_CLASSES",
    "IMAGENETTE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMG_SIZE_RANGE",
    "Checksum",
    "ImagenetteArchive",
    "ImagenetteClass",
]

#: Per-channel mean of ImageNet's RGB images in [0, 1]; source: torchvision's
#: ``ResNet18_Weights.IMAGENET1K_V1.transforms()``.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: Per-channel standard deviation of ImageNet's RGB images in [0, 1]; source: as the mean.
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: camtool's convention, not a fact: the range of image sides (pixels) a model input may have.
IMG_SIZE_RANGE: tuple[int, int] = (16, 4096)


class ImagenetteClass(NamedTuple):
    """One Imagenette class: ``wnid`` (its folder name), ``name`` (ImageNet-1k's readable name)
    and ``imagenet_index`` (among ImageNet-1k's 1000 classes)."""

    wnid: str
    name: str
    imagenet_index: int


#: Imagenette's classes in sorted-wnid order, which is camtool's class-index order.
IMAGENETTE: tuple[ImagenetteClass, ...] = (
    ImagenetteClass("n01440764", "tench", 0),
    ImagenetteClass("n02102040", "English springer", 217),
    ImagenetteClass("n02979186", "cassette player", 482),
    ImagenetteClass("n03000684", "chain saw", 491),
    ImagenetteClass("n03028079", "church", 497),
    ImagenetteClass("n03394916", "French horn", 566),
    ImagenetteClass("n03417042", "garbage truck", 569),
    ImagenetteClass("n03425413", "gas pump", 571),
    ImagenetteClass("n03445777", "golf ball", 574),
    ImagenetteClass("n03888257", "parachute", 701),
)

#: WordNet id -> readable name, in class-index order (a view of :data:`IMAGENETTE`).
IMAGENETTE_CLASSES: dict[str, str] = {c.wnid: c.name for c in IMAGENETTE}
#: WordNet id -> ImageNet-1k class index (a view of :data:`IMAGENETTE`).
IMAGENETTE_INDEX: dict[str, int] = {c.wnid: c.imagenet_index for c in IMAGENETTE}


_HEX_LENGTHS = {"sha256": 64, "md5": 32}


@dataclass(frozen=True)
class Checksum:
    """An expected digest: ``algo`` (``"sha256"`` or ``"md5"``) and ``hex`` (stored lower case);
    ``str()`` gives ``algo:hex``.

    Raises:
        ConfigError: an unknown algorithm or a digest that is not hex of the right length.
    """

    algo: str
    hex: str

    def __post_init__(self) -> None:
        algo = self.algo.lower()
        digest = self.hex.strip().lower()
        if algo not in _HEX_LENGTHS:
            raise ConfigError(
                f"unsupported checksum algorithm {self.algo!r}; use one of: "
                + ", ".join(sorted(_HEX_LENGTHS))
            )
        length = _HEX_LENGTHS[algo]
        if len(digest) != length or re.fullmatch(r"[0-9a-f]+", digest) is None:
            raise ConfigError(
                f"{algo} checksum must be {length} hexadecimal characters, got {self.hex!r}"
            )
        object.__setattr__(self, "algo", algo)
        object.__setattr__(self, "hex", digest)

    def __str__(self) -> str:
        return f"{self.algo}:{self.hex}"


@dataclass(frozen=True)
class ImagenetteArchive:
    """An archive ``camtool download`` fetches (or a mirror, or a file given by hand).

    Attributes:
        name: what ``camtool download --dataset`` takes: ``"imagenette-160"``.
        url: where it is served (None: given by hand); ``filename``: its name in the data folder.
        folder: its single top-level folder, the file name's stem (``imagenette2-160``).
        size: bytes, None when unknown; ``checksum``: checked before extraction (None: none);
            ``md5``: torchvision's, not checked.
    """

    name: str
    url: str | None
    filename: str
    folder: str
    size: int | None
    checksum: Checksum | None
    md5: str | None = None


_S3 = "https://s3.amazonaws.com/fast-ai-imageclas/"

#: The official Imagenette archives, smallest first.
IMAGENETTE_ARCHIVES: tuple[ImagenetteArchive, ...] = (
    ImagenetteArchive(
        "imagenette-160",
        _S3 + "imagenette2-160.tgz",
        "imagenette2-160.tgz",
        "imagenette2-160",
        99_003_388,
        Checksum("sha256", "64d0c4859f35a461889e0147755a999a48b49bf38a7e0f9bd27003f10db02fe5"),
        "e793b78cc4c9e9a4ccc0c1155377a412",
    ),
    ImagenetteArchive(
        "imagenette-320",
        _S3 + "imagenette2-320.tgz",
        "imagenette2-320.tgz",
        "imagenette2-320",
        341_663_724,
        Checksum("sha256", "569b4497c98db6dd29f335d1f109cf315fe127053cedf69010d047f0188e158c"),
        "3df6f0d01a2c9592104656642f5e78a3",
    ),
    ImagenetteArchive(
        "imagenette",
        _S3 + "imagenette2.tgz",
        "imagenette2.tgz",
        "imagenette2",
        1_557_161_267,
        Checksum("sha256", "6cbfac238434d89fe99e651496f0812ebc7a10fa62bd42d6874042bf01de4efd"),
        "fe2fc210e6bb7c5664d602c3cd71e612",
    ),
)
