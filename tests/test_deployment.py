"""Where users run camtool: as a container's pid 1, with other multiprocessing start methods."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from camtool.data.synthetic import make_shapes_dataset

ROOT = Path(__file__).resolve().parents[1]

# Runs one worker's init in a fresh interpreter: argv[1] is the pid recorded as the worker's
# creator, argv[2] the parent pid the worker then sees (as if re-parented, or as in a container).
WORKER_INIT = textwrap.dedent(
    """
    import os, sys
    from camtool import process

    os.getpid = lambda: int(sys.argv[1])
    init = process.worker_init()
    os.getppid = lambda: int(sys.argv[2])
    init(0)
    print("alive", flush=True)
    """
)


def env() -> dict[str, str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("CAMTOOL_")}
    variables["PYTHONPATH"] = os.pathsep.join([str(ROOT), variables.get("PYTHONPATH", "")])
    variables["OMP_NUM_THREADS"] = "1"
    return variables


def run_worker_init(creator: int, parent: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", WORKER_INIT, str(creator), str(parent)]
    return subprocess.run(command, env=env(), capture_output=True, text=True, timeout=60)


def test_a_worker_of_a_pid_1_parent_lives() -> None:
    done = run_worker_init(creator=1, parent=1)
    assert (done.returncode, done.stdout) == (0, "alive\n"), done.stderr


def test_a_worker_whose_parent_died_exits() -> None:
    # Its creator was pid 4242; it now sees pid 1 as its parent: it was re-parented.
    done = run_worker_init(creator=4242, parent=1)
    assert (done.returncode, done.stdout) == (1, "")


def test_a_worker_reparented_to_a_subreaper_exits() -> None:
    done = run_worker_init(creator=4242, parent=777)
    assert (done.returncode, done.stdout) == (1, "")


# Leaves its loader (persistent workers) open at exit, as a notebook or script may.
LOADER = textwrap.dedent(
    """
    import multiprocessing, sys, torch
    from camtool.data.datasets import make_loader

    if __name__ == "__main__":
        multiprocessing.set_start_method(sys.argv[1])
        data = torch.utils.data.TensorDataset(torch.arange(8.0), torch.zeros(8, dtype=torch.long))
        loader = make_loader(data, 2, shuffle=False, workers=2, pin_memory=False)
        print(sum(len(x) for x, *_ in loader), flush=True)
    """
)


@pytest.mark.parametrize("method", __import__("multiprocessing").get_all_start_methods())
def test_loader_workers_live_and_end_under_every_start_method(tmp_path: Path, method: str) -> None:
    # forkserver (Python 3.14's default on Linux): the workers' parent is the fork server.
    script = tmp_path / "loader.py"
    script.write_text(LOADER)
    done = subprocess.run([sys.executable, str(script), method], env=env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "8\n"), done.stderr


# Trains as pid 1 of a new pid namespace, as `docker run IMAGE camtool train` does.
AS_PID_1 = textwrap.dedent(
    """
    import os, sys
    assert os.getpid() == 1, os.getpid()
    from camtool.cli import main
    sys.argv = ["camtool", *sys.argv[1:]]
    main()
    """
)


def _pid_namespaces() -> str | None:
    """Why a new pid namespace cannot be made here (``None``: it can)."""
    if shutil.which("unshare") is None:
        return "no unshare command (util-linux)"
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, text=True)  # fmt: skip
    return None if probe.returncode == 0 else f"unshare --pid fails: {probe.stderr.strip()}"


@pytest.mark.skipif(_pid_namespaces() is not None, reason=str(_pid_namespaces()))
def test_train_with_two_workers_as_pid_1(tmp_path: Path) -> None:
    data = make_shapes_dataset(tmp_path / "shapes", train_per_class=6, val_per_class=1,
                               image_size=32, seed=1, classes=("circle", "square"))  # fmt: skip
    folder = tmp_path / "ck"
    variables = env() | {"CAMTOOL_DATASET__VAL_SIZE": "4", "CAMTOOL_DATASET__NAME": "folder"}
    command = [
        "unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", AS_PID_1,
        "train", "--data-dir", str(data), "--checkpoint-dir", str(folder), "--epochs", "1",
        "--batch-size", "4", "--img-size", "32", "--workers", "2", "--device", "cpu",
        "--no-pretrained",
    ]  # fmt: skip
    done = subprocess.run(command, env=variables, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows if "epoch" in row] == [1]
