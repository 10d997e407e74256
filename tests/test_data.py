"""Tests of dataset discovery, listing, splits, transforms and loaders."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image

from camtool.data.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    IMAGENETTE_CLASSES,
    ImageFolderDataset,
    SkippedImage,
    build_transforms,
    class_names_for,
    collate_skip_none,
    find_dataset_root,
    make_loader,
)
from camtool.data.splits import make_splits
from camtool.errors import CamtoolError, ConfigError, InputError

TF = build_transforms(8, train=False)


def _image(
    path: Path, colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (16, 16)
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _dataset(root: Path, counts: dict[str, int], val: int = 1) -> Path:
    """``root/train/<class>/<i>.png`` with ``counts[class]`` images, ``val`` per class in val/."""
    for k, (name, n) in enumerate(sorted(counts.items())):
        for i in range(n):
            _image(root / "train" / name / f"{i:03d}.png", (20 * k, 100, i % 256))
        for i in range(val):
            _image(root / "val" / name / f"{i:03d}.png", (20 * k, 50, i))
    return root


# --- class names -------------------------------------------------------------------------------


def test_imagenette_classes_in_sorted_wnid_order() -> None:
    wnids = list(IMAGENETTE_CLASSES)
    assert wnids == sorted(wnids) and len(wnids) == 10
    names = list(IMAGENETTE_CLASSES.values())
    assert names[0] == "tench" and names[-1] == "parachute"
    assert names[6:9] == ["garbage truck", "gas pump", "golf ball"]


def test_class_names_imagenette_maps_wnids_in_index_order(tmp_path: Path) -> None:
    root = tmp_path / "imagenette2-160"
    for wnid in reversed(list(IMAGENETTE_CLASSES)):
        _image(root / "train" / wnid / "a.JPEG")
    assert class_names_for(root, "imagenette") == list(IMAGENETTE_CLASSES.values())
    assert class_names_for(root, "imagenette-320") == list(IMAGENETTE_CLASSES.values())
    assert class_names_for(root, "folder") == sorted(IMAGENETTE_CLASSES)


def test_class_names_folder_kept_as_is_and_unknown_name_rejected(tmp_path: Path) -> None:
    root = _dataset(tmp_path, {"Zebra": 1, "apple": 1, "n01440764": 1})
    assert class_names_for(root, "folder") == ["Zebra", "apple", "n01440764"]
    assert class_names_for(root, "imagenette") == ["Zebra", "apple", "tench"]
    with pytest.raises(ConfigError, match="cifar"):
        class_names_for(root, "cifar")


# --- find_dataset_root -------------------------------------------------------------------------


def test_find_dataset_root_itself(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    assert find_dataset_root(tmp_path) == tmp_path


def test_find_dataset_root_single_subfolder(tmp_path: Path) -> None:
    ds = tmp_path / "imagenette2-160"
    (ds / "train").mkdir(parents=True)
    (ds / "val").mkdir()
    (tmp_path / "other").mkdir()  # no train/val
    hidden = tmp_path / ".partial"
    (hidden / "train").mkdir(parents=True)
    (hidden / "val").mkdir()
    (tmp_path / "imagenette2-160.tgz").write_bytes(b"")
    assert find_dataset_root(tmp_path) == ds


@pytest.mark.parametrize("setup", ["missing", "empty", "train_only_subfolder"])
def test_find_dataset_root_missing_says_download(tmp_path: Path, setup: str) -> None:
    data_dir = tmp_path / "data"
    if setup != "missing":
        data_dir.mkdir()
    if setup == "train_only_subfolder":
        (data_dir / "sub" / "train").mkdir(parents=True)
    with pytest.raises(CamtoolError, match="camtool download"):
        find_dataset_root(data_dir)


def test_find_dataset_root_several_candidates(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name / "train").mkdir(parents=True)
        (tmp_path / name / "val").mkdir()
    with pytest.raises(CamtoolError, match="a, b"):
        find_dataset_root(tmp_path)


# --- ImageFolderDataset ------------------------------------------------------------------------


def test_listing_filters_extensions_and_hidden_files_sorted(tmp_path: Path) -> None:
    cat = tmp_path / "train" / "cat"
    _image(cat / "b.png")
    _image(cat / "A.JPEG", size=(10, 10))
    _image(cat / "nested" / "c.Jpg")
    _image(cat / ".hidden.png")
    _image(cat / ".cache" / "d.png")
    (cat / "notes.txt").write_text("x")
    (cat / "e.png.part").write_bytes(b"")
    _image(tmp_path / "train" / "dog" / "z.webp")
    _image(tmp_path / "train" / ".trash" / "y.png")
    ds = ImageFolderDataset(tmp_path, "train", TF)
    assert ds.classes == ["cat", "dog"]
    assert [(p.relative_to(tmp_path).as_posix(), y) for p, y in ds.samples] == [
        ("train/cat/A.JPEG", 0),
        ("train/cat/b.png", 0),
        ("train/cat/nested/c.Jpg", 0),
        ("train/dog/z.webp", 1),
    ]
    assert ds.targets == [0, 0, 0, 1] and len(ds) == 4


def test_getitem_returns_tensor_and_label(tmp_path: Path) -> None:
    root = _dataset(tmp_path, {"a": 1, "b": 2})
    ds = ImageFolderDataset(root, "train", TF)
    item = ds[2]
    assert item is not None
    image, label = item
    assert image.shape == (3, 8, 8) and image.dtype == torch.float32 and label == 1


def test_given_class_to_idx_is_used_and_unknown_folder_rejected(tmp_path: Path) -> None:
    root = _dataset(tmp_path, {"a": 1, "b": 1})
    ds = ImageFolderDataset(root, "val", TF, class_to_idx={"b": 0, "a": 1, "c": 2})
    assert ds.classes == ["b", "a", "c"]
    assert ds.targets == [1, 0]
    with pytest.raises(InputError, match="b"):
        ImageFolderDataset(root, "val", TF, class_to_idx={"a": 0})


def test_missing_or_empty_split_raises(tmp_path: Path) -> None:
    with pytest.raises(CamtoolError, match="missing"):
        ImageFolderDataset(tmp_path, "train", TF)
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "x.txt").write_text("")
    with pytest.raises(CamtoolError, match="no images"):
        ImageFolderDataset(tmp_path, "train", TF)


def test_dataset_applies_exif_orientation_and_converts(tmp_path: Path) -> None:
    root = tmp_path / "d"
    (root / "train" / "a").mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("L", (20, 10), 128).save(root / "train" / "a" / "rot.jpg", exif=exif)
    seen: list[tuple[int, int]] = []

    def transform(image: Image.Image) -> torch.Tensor:
        seen.append((*image.size, len(image.getbands())))
        return torch.zeros(1)

    ImageFolderDataset(root, "train", transform)[0]
    assert seen == [(10, 20, 3)]


def _with_corrupt(tmp_path: Path) -> ImageFolderDataset:
    root = _dataset(tmp_path, {"a": 3, "b": 2})
    (root / "train" / "a" / "001.png").write_bytes(b"garbage")
    truncated = root / "train" / "b" / "000.png"
    truncated.write_bytes(truncated.read_bytes()[:40])
    return ImageFolderDataset(root, "train", TF)


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    ds = _with_corrupt(tmp_path)
    bad, truncated = ds[1], ds[3]
    assert isinstance(bad, SkippedImage) and bad.path == str(ds.samples[1][0])
    assert bad.error == "not an image, or a format Pillow cannot read"
    assert isinstance(truncated, SkippedImage) and truncated.path == str(ds.samples[3][0])
    assert not isinstance(ds[0], SkippedImage)


@pytest.mark.parametrize("workers", [0, 1])
def test_loader_skips_and_counts_corrupt_images(tmp_path: Path, workers: int) -> None:
    ds = _with_corrupt(tmp_path)
    loader = make_loader(ds, batch_size=2, shuffle=False, workers=workers, pin_memory=False)
    seen, skipped, labels = 0, [], []
    for images, y, unreadable in loader:
        assert images.shape[1:] == (3, 8, 8)
        seen += len(y)
        skipped += [s.path for s in unreadable]
        labels += y.tolist()
    assert seen == 3 and labels == [0, 0, 1]
    assert skipped == [str(ds.samples[1][0]), str(ds.samples[3][0])]


def test_collate_all_skipped_gives_empty_batch() -> None:
    gone = [SkippedImage("a.png", "empty file"), SkippedImage("b.png", "empty file")]
    images, labels, skipped = collate_skip_none(gone)
    assert images.numel() == 0 and labels.numel() == 0 and skipped == gone
    assert labels.dtype == torch.long


# --- transforms --------------------------------------------------------------------------------


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("size", [(16, 16), (40, 24)])
def test_transform_output_shape(train: bool, size: tuple[int, int]) -> None:
    out = build_transforms(12, train)(Image.new("RGB", size, (10, 20, 30)))
    assert out.shape == (3, 12, 12) and out.dtype == torch.float32


def test_eval_transform_normalises_and_centre_crops() -> None:
    image = Image.new("RGB", (20, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 1, 20))  # a white left column, cut by the centre crop
    out = build_transforms(16, train=False)(image)
    expected = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])
    assert torch.allclose(out, expected.view(3, 1, 1).expand(3, 16, 16), atol=1e-5)


def test_train_transform_is_random_and_eval_is_not() -> None:
    image = Image.new("RGB", (16, 16))
    image.paste((255, 0, 0), (0, 0, 5, 16))
    torch.manual_seed(0)
    train = build_transforms(8, train=True)
    outs = [train(image) for _ in range(6)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    evaluate = build_transforms(8, train=False)
    assert torch.equal(evaluate(image), evaluate(image))


@pytest.mark.parametrize("scale", [(0.0, 1.0), (0.8, 0.5), (0.5, 1.5)])
def test_bad_crop_scale_rejected(scale: tuple[float, float]) -> None:
    with pytest.raises(ConfigError):
        build_transforms(8, True, crop_scale=scale)


def test_bad_img_size_rejected() -> None:
    with pytest.raises(ConfigError):
        build_transforms(0, True)


# --- splits and loaders ------------------------------------------------------------------------


def _split_paths(ds: torch.utils.data.Subset) -> list[Path]:  # type: ignore[type-arg]
    base = ds.dataset
    assert isinstance(base, ImageFolderDataset)
    return [base.samples[i][0] for i in ds.indices]


def test_make_splits_sizes_disjoint_stratified(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "data" / "ds", {"a": 12, "b": 6, "c": 2}, val=2)
    splits = make_splits(tmp_path / "data", "folder", img_size=8, val_size=5, seed=1)
    train = _split_paths(splits.train)  # type: ignore[arg-type]
    val = _split_paths(splits.val)  # type: ignore[arg-type]
    assert len(train) == 15 and len(val) == 5
    assert not set(train) & set(val)
    assert set(train) | set(val) == set((root / "train").rglob("*.png"))
    assert Counter(p.parent.name for p in val) == {"a": 3, "b": 2}  # 3.0, 1.5, 0.5 -> 3, 2, 0
    assert len(splits.test) == 6  # type: ignore[arg-type]
    assert splits.class_names == ["a", "b", "c"]


def test_make_splits_deterministic_per_seed(tmp_path: Path) -> None:
    _dataset(tmp_path, {"a": 20, "b": 20})
    first = make_splits(tmp_path, "folder", 8, val_size=8, seed=3)
    again = make_splits(tmp_path, "folder", 8, val_size=8, seed=3)
    other = make_splits(tmp_path, "folder", 8, val_size=8, seed=4)
    assert _split_paths(first.val) == _split_paths(again.val)  # type: ignore[arg-type]
    assert _split_paths(first.val) != _split_paths(other.val)  # type: ignore[arg-type]


def test_make_splits_transforms_and_test_labels(tmp_path: Path) -> None:
    _dataset(tmp_path, {"a": 4, "b": 4}, val=2)
    splits = make_splits(tmp_path, "folder", 8, val_size=2)
    val_item, train_item, test_item = splits.val[0], splits.train[0], splits.test[3]
    assert val_item is not None and train_item is not None and test_item is not None
    assert val_item[0].shape == train_item[0].shape == (3, 8, 8)
    assert torch.equal(splits.val[0][0], val_item[0])  # type: ignore[index]
    assert test_item[1] == 1
    assert isinstance(splits.test, ImageFolderDataset) and splits.test.transform is not None


def test_make_splits_zero_val_size(tmp_path: Path) -> None:
    _dataset(tmp_path, {"a": 2, "b": 2})
    splits = make_splits(tmp_path, "folder", 8, val_size=0)
    assert len(splits.val) == 0 and len(splits.train) == 4  # type: ignore[arg-type]


@pytest.mark.parametrize("val_size", [4, 9, -1])
def test_make_splits_bad_val_size(tmp_path: Path, val_size: int) -> None:
    _dataset(tmp_path, {"a": 2, "b": 2})
    with pytest.raises(ConfigError, match="val_size") as info:
        make_splits(tmp_path, "folder", 8, val_size=val_size)
    assert "train/ has 4 images" in str(info.value) and "--val-size 0.1" in str(info.value)


def test_make_splits_fraction_holds_out_every_class_of_a_small_folder(tmp_path: Path) -> None:
    _dataset(tmp_path, {"a": 3, "b": 5, "c": 30, "d": 1})
    splits = make_splits(tmp_path, "folder", 8, val_size=0.1)
    held = [splits.val[i][1] for i in range(len(splits.val))]  # type: ignore[arg-type, index]
    kept = [splits.train[i][1] for i in range(len(splits.train))]  # type: ignore[arg-type, index]
    assert sorted(held) == [0, 1, 2, 2, 2]  # 10% of 39 = 4, at least one of a and b; c gets 3
    assert sorted(set(kept)) == [0, 1, 2, 3]  # every class keeps training images (d: its one)
    assert len(held) + len(kept) == 39

    _dataset(tmp_path / "singles", {"a": 1, "b": 1})
    with pytest.raises(ConfigError, match="every class in train/ has a single image"):
        make_splits(tmp_path / "singles", "folder", 8, val_size=0.1)


def test_make_splits_imagenette_names_and_missing_dataset(tmp_path: Path) -> None:
    _dataset(tmp_path / "imagenette2-160", {"n01440764": 2, "n03888257": 2})
    splits = make_splits(tmp_path, "imagenette", 8, val_size=1)
    assert splits.class_names == ["tench", "parachute"]
    with pytest.raises(CamtoolError, match="camtool download"):
        make_splits(tmp_path / "nothing", "imagenette", 8, val_size=1)
    with pytest.raises(ConfigError):
        make_splits(tmp_path, "mnist", 8, val_size=1)


def test_make_splits_missing_val_folder(tmp_path: Path) -> None:
    _dataset(tmp_path, {"a": 2, "b": 2}, val=0)
    with pytest.raises(CamtoolError, match="val"):
        make_splits(tmp_path, "folder", 8, val_size=1)


def test_loader_shuffle_is_reproducible_with_seed(tmp_path: Path) -> None:
    ds = ImageFolderDataset(_dataset(tmp_path, {"a": 8, "b": 8}), "train", TF)

    def order(seed: int) -> list[int]:
        loader = make_loader(ds, batch_size=4, shuffle=True, workers=0, pin_memory=False, seed=seed)
        return [label for _, y, _ in loader for label in y.tolist()]

    assert order(5) == order(5)
    assert order(5) != order(6) or order(5) != order(7)
    plain = make_loader(ds, batch_size=16, shuffle=False, workers=0, pin_memory=False)
    assert next(iter(plain))[1].tolist() == ds.targets


def test_loader_uses_given_sampler(tmp_path: Path) -> None:
    ds = ImageFolderDataset(_dataset(tmp_path, {"a": 3, "b": 3}), "train", TF)
    sampler = torch.utils.data.SubsetRandomSampler([4, 5])
    loader = make_loader(ds, 8, shuffle=True, workers=0, pin_memory=False, sampler=sampler)
    assert sorted(next(iter(loader))[1].tolist()) == [1, 1]


@pytest.mark.parametrize(("batch_size", "workers"), [(0, 0), (2, -1)])
def test_loader_bad_arguments(tmp_path: Path, batch_size: int, workers: int) -> None:
    ds = ImageFolderDataset(_dataset(tmp_path, {"a": 1, "b": 1}), "train", TF)
    with pytest.raises(ConfigError):
        make_loader(ds, batch_size, shuffle=False, workers=workers, pin_memory=False)
