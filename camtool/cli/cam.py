"""``camtool cam``: class activation maps for a few images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from camtool.choices import DeviceName
from camtool.cli import _common as opts
from camtool.cli._app import command
from camtool.cli._common import choice_value, flag, option, refuse_class_with_topk, resolve_settings
from camtool.cli._output import err, print_json, print_table, report_written
from camtool.errors import EXIT_FAILURE, EXIT_PARTIAL, ConfigError

if TYPE_CHECKING:
    from camtool.core.runner import Runner
    from camtool.evaluation.samples import DatasetSample
    from camtool.explain.files import ImageResult
    from camtool.settings import Settings


@command(
    no_args_is_help=True, short_help="Maps for a few images: figure or overlay, .npz arrays, top-k."
)
def cam(
    images: list[Path] | None = typer.Argument(
        None, metavar="[IMAGE...]", help="Image files to explain (or --dataset).", readable=False
    ),
    model: Path | None = opts.MODEL,
    arch: str | None = opts.ARCH,
    data_dir: Path | None = option(
        "--data-dir",
        metavar="DIR",
        help="Without --model: keep only this dataset's classes (Imagenette WordNet-id folders) "
        "of the ImageNet model, the zero-shot baseline beside a model trained on it. With "
        "--dataset: the dataset folder, as `camtool eval --data-dir` takes it.",
    ),
    dataset: str | None = option(
        "--dataset",
        metavar="SPLIT",
        help="Explain samples of train or val of the model's dataset (found as `camtool eval` "
        "finds it), or of a FOLDER of class folders; with --random or --index. Not with "
        "IMAGE files [default with --random/--index: val].",
    ),
    random_count: int | None = option(
        "--random",
        min=1,
        metavar="N",
        help="N samples of --dataset drawn at random (the indices are printed).",
    ),
    index: list[int] | None = option(
        "--index",
        min=0,
        metavar="I",
        help="Sample I of --dataset, as `camtool eval` numbers it (sorted files); repeatable.",
    ),
    seed: int | None = option(
        "--seed",
        min=0,
        metavar="S",
        help="Seed of --random: the same seed draws the same samples [default: a fresh one, "
        "printed].",
    ),
    class_: str | None = opts.CLASS,
    topk: int | None = opts.TOPK,
    alpha: float | None = opts.ALPHA,
    colormap: str | None = opts.COLORMAP,
    output_dir: Path | None = opts.OUTPUT_DIR,
    overlay_only: bool = flag(
        "--overlay-only", help="Write just the overlay, at the image's own resolution."
    ),
    save_array: bool = flag(
        "--save-array", help="Also write <stem>.npz: cam, heatmap, logits, class_idx."
    ),
    device: DeviceName | None = opts.DEVICE,
    config: Path | None = opts.CONFIG,
    overwrite: bool = opts.OVERWRITE,
    json_out: bool = opts.JSON,
) -> None:
    """Explain images: original | heatmap | overlay figure, titled with class and probability.

    Figures of an image whose true class is known (a --dataset sample, or a file under a
    folder named like one of the model's classes) are titled "true: X | predicted: Y (p)",
    in red when wrong.

    Exit status: 0 all written, 3 some images failed, 1 none could be explained.

    \b
    Examples:
      camtool cam dog.jpg --model best.pt --class 3 -o maps/
      camtool cam a.jpg b.jpg --topk 2 --save-array
      camtool cam a.jpg --data-dir data/imagenette2-160   # zero-shot ImageNet
      camtool cam --dataset val --random 5 --seed 0 --model best.pt
      camtool cam --dataset val --index 42 --model best.pt
    """
    refuse_class_with_topk(class_, topk)
    if dataset is None and (random_count is not None or index):
        dataset = "val"
    _refuse_mixed(images or [], dataset, random_count, index or [], seed)
    if data_dir is not None and model is not None and dataset is None:
        raise ConfigError(
            "--data-dir chooses the classes of the ImageNet model used without --model; "
            "a --model file has its own classes: give one of them"
        )
    settings = resolve_settings(
        config,
        cam=dict(topk=topk, alpha=alpha, colormap=colormap, output_dir=output_dir),
        runtime=dict(device=choice_value(device)),
        model=dict(arch=arch),
        dataset=dict(data_dir=data_dir if dataset is not None else None),
    )
    from camtool.explain.job import run_cam

    view: dict[str, Any] | None = None
    truths: list[int | None] | None = None
    runner = imagenet_classes = None
    if dataset is not None:
        runner, view, samples = _dataset_samples(
            dataset, model, settings, random_count, index or [], seed
        )
        images, truths = [s.path for s in samples], [s.true_idx for s in samples]
    elif data_dir is not None:  # no --model (refused above): the dataset's ImageNet classes
        from camtool.runtime import dataset_classes

        imagenet_classes = dataset_classes(data_dir)
    report = run_cam(
        images or [],
        settings,
        model_path=model,
        imagenet_classes=imagenet_classes,
        class_spec=class_,
        overlay_only=overlay_only,
        save_array=save_array,
        on_result=_show_error if json_out else _show,
        overwrite=overwrite,
        locate=json_out,  # peak and box are in the JSON only
        runner=runner,
        truths=truths,
    )
    if json_out:
        entries = [r.to_dict() for r in report.results]
        if view is not None:
            for entry, i in zip(entries, view["indices"], strict=True):
                entry["index"] = i
        print_json(
            {
                "model": report.model.source if report.model is not None else None,
                "device": report.device,
                "output_dir": str(report.output_dir),
                "dataset": view,
                "images": entries,
                "failed": report.failed,
            }
        )
    elif report.failed and len(report.results) > 1:  # after the per-image errors, a summary
        err.print(f"{report.failed} of {len(report.results)} images failed")
    if report.failed:
        every = report.failed == len(report.results)
        raise typer.Exit(EXIT_FAILURE if every else EXIT_PARTIAL)


def _refuse_mixed(
    images: list[Path], dataset: str | None, count: int | None, index: list[int], seed: int | None
) -> None:
    """Refuse (ConfigError) images with ``--dataset``, and dataset flags that choose nothing."""
    if dataset is not None and images:
        raise ConfigError("give IMAGE files or --dataset, not both")
    if dataset is None and not images:
        raise ConfigError("give IMAGE files, or --dataset SPLIT with --random N or --index I")
    if dataset is not None and (count is None) == (not index):
        raise ConfigError("--dataset chooses samples with either --random N or --index I")
    if seed is not None and count is None:
        raise ConfigError("--seed seeds --random N; --index names its samples itself")


def _dataset_samples(
    dataset: str,
    model: Path | None,
    settings: Settings,
    count: int | None,
    index: list[int],
    seed: int | None,
) -> tuple[Runner, dict[str, Any], list[DatasetSample]]:
    """Open the model and its dataset as ``eval`` does and choose the samples (said on stderr):
    the runner, the JSON's ``"dataset"`` entry and the samples."""
    from camtool.evaluation.data import SPLITS
    from camtool.evaluation.samples import choose_samples, draw_seed
    from camtool.evaluation.source import open_model_and_dataset
    from camtool.explain.job import QUICK_START_IMAGES
    from camtool.runtime import runner_from_settings

    few = (count or len(index)) <= QUICK_START_IMAGES
    root = None
    if dataset in SPLITS:
        runner, root = open_model_and_dataset(model, settings, few_images=few)
    else:
        runner = runner_from_settings(model, settings, few_images=few)
    folder = root / dataset if root is not None else Path(dataset)
    if count is not None and seed is None:  # (--seed without --random is refused)
        seed = draw_seed()
    size, samples = choose_samples(
        dataset,
        runner.info,
        root,
        indices=index,
        count=count,
        seed=seed or 0,
        max_pixels=settings.cam.max_pixels,
        name=str(folder),
    )
    chosen = [sample.index for sample in samples]
    how = f" drawn with --seed {seed}" if count is not None else ""
    err.print(f"{folder}: {size} images; samples{how}: {', '.join(map(str, chosen))}")
    entry = {"folder": str(folder), "size": size, "indices": chosen, "seed": seed}
    return runner, entry, samples


def _show_error(result: ImageResult) -> None:
    """With ``--json``: the JSON holds every result; a failed image also gets its line on stderr."""
    if not result.ok:
        err.print(f"camtool: error: {result.error}")


def _show(result: ImageResult) -> None:
    if not result.ok:
        _show_error(result)
        return
    title = result.input
    if result.true_name is not None:
        title += f"  (true: {result.true_name})"
    rows = [(str(rank), p) for rank, p in enumerate(result.topk, 1)]
    if result.target is not None and result.target.index not in {p.index for p in result.topk}:
        rows.append(("--class", result.target))
    print_table(
        ("#", "class", "name", "probability", "logit"),
        [
            (rank, str(p.index), p.name, f"{p.probability:.4f}", f"{p.logit:.3f}")
            for rank, p in rows
        ],
        right=("#", "class", "probability", "logit"),
        title=title,
    )
    report_written(result.outputs)
