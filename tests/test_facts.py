"""Every fact in :mod:`camtool.core.imagenet`, checked against a source shipping with a dependency.

Never against camtool's own table: torchvision's weight metadata gives ImageNet-1k's names and
the normalisation, timm's ImageNet synset list places the WordNet ids among the 1000 classes,
and torchvision's ``datasets.Imagenette`` lists fast.ai's archives and Imagenette's ids.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from timm.data import ImageNetInfo  # a dev dependency
from torchvision.datasets import Imagenette
from torchvision.models import ResNet18_Weights

from camtool.core.imagenet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    IMAGENETTE,
    IMAGENETTE_ARCHIVES,
    IMAGENETTE_CLASSES,
    IMAGENETTE_INDEX,
)
from camtool.data.download import ARCHIVES

#: ImageNet-1k's indices of Imagenette's classes (fast.ai's README, issue 19), typed here once.
PUBLISHED_INDICES = (0, 217, 482, 491, 497, 566, 569, 571, 574, 701)

#: torchvision's names for its Imagenette archives (``Imagenette(size=...)``).
TORCHVISION_SIZES = {"imagenette-160": "160px", "imagenette-320": "320px", "imagenette": "full"}


def _categories() -> list[str]:
    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def test_imagenette_names_are_imagenet_categories_at_the_published_indices() -> None:
    categories = _categories()
    assert [c.imagenet_index for c in IMAGENETTE] == list(PUBLISHED_INDICES)
    for entry in IMAGENETTE:
        assert entry.name.casefold() == categories[entry.imagenet_index].casefold(), entry


def test_imagenette_wnids_sit_at_their_indices_in_timm_synsets() -> None:
    info = ImageNetInfo()
    for entry in IMAGENETTE:
        assert info.index_to_label_name(entry.imagenet_index) == entry.wnid, entry
    assert {c.wnid: c.imagenet_index for c in IMAGENETTE} == IMAGENETTE_INDEX


def test_imagenette_wnids_and_names_match_torchvisions_imagenette() -> None:
    published = Imagenette._WNID_TO_CLASS  # torchvision's table of fast.ai's ids and names
    assert list(IMAGENETTE_CLASSES) == sorted(published)
    for wnid, name in IMAGENETTE_CLASSES.items():
        assert name.casefold() == published[wnid][0].casefold(), wnid


def test_the_two_ids_once_typed_wrong() -> None:
    categories = _categories()
    info = ImageNetInfo()
    for index in (566, 701):  # French horn and parachute
        wnid = info.index_to_label_name(index)
        assert IMAGENETTE_CLASSES[wnid] == categories[index]
    assert "n03394912" not in IMAGENETTE_CLASSES and "n03888605" not in IMAGENETTE_CLASSES


def test_imagenet_mean_and_std_are_torchvisions() -> None:
    preset = ResNet18_Weights.IMAGENET1K_V1.transforms()
    assert list(IMAGENET_MEAN) == pytest.approx(list(preset.mean), abs=0)
    assert list(IMAGENET_STD) == pytest.approx(list(preset.std), abs=0)


def test_archive_urls_names_folders_and_md5_are_torchvisions() -> None:
    published = Imagenette._ARCHIVES  # size name -> (url, md5)
    assert {a.name for a in IMAGENETTE_ARCHIVES} == set(TORCHVISION_SIZES)
    for archive in IMAGENETTE_ARCHIVES:
        url, md5 = published[TORCHVISION_SIZES[archive.name]]
        path = PurePosixPath(url)
        assert archive.url == url
        assert archive.filename == path.name
        assert archive.folder == path.stem  # torchvision extracts the archive to its stem
        assert archive.md5 == md5


def test_download_plans_are_the_facts() -> None:
    for archive in IMAGENETTE_ARCHIVES:
        assert ARCHIVES[archive.name] is archive
        assert archive.checksum is not None and archive.checksum.algo == "sha256"
