"""Long runs that survive what happens to long runs: SIGTERM, full disks, two runs, kill -9."""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from camtool.batch.manifest import MANIFEST_JSONL, ManifestWriter, read_rows
from camtool.cli import app
from camtool.core.checkpoint import load_checkpoint
from camtool.data.synthetic import make_shapes_dataset
from camtool.errors import EXIT_TERMINATED, CamtoolError
from camtool.fsutil import (
    SCRATCH_PREFIX,
    STALE_AFTER_S,
    atomic_path,
    atomic_write_bytes,
    remove_stale_temps,
)
from camtool.process import LOCK_NAME, folder_lock
from camtool.training.checkpoints import BEST_FILE, LAST_FILE, METRICS_FILE
from camtool.training.loop import train
from tests.conftest import tiny_train_settings

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("safety_data") / "shapes"
    return make_shapes_dataset(
        root,
        train_per_class=6,
        val_per_class=1,
        image_size=32,
        seed=1,
        classes=("circle", "square"),
    )


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def finished_run(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint folder of a finished two-epoch run (copy it before changing it)."""
    folder = tmp_path_factory.mktemp("finished") / "ck"
    train(tiny_train_settings(shapes, folder))
    return folder


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "ck"))


@pytest.fixture(autouse=True)
def _small_holdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny dataset's holdout for the commands run in this process."""
    monkeypatch.setenv("CAMTOOL_DATASET__VAL_SIZE", "4")
    monkeypatch.setenv("CAMTOOL_DATASET__NAME", "folder")


def train_args(data: Path, folder: Path, epochs: int = 2) -> list[str]:
    return [
        "train", "--data-dir", str(data), "--checkpoint-dir", str(folder), "--epochs", str(epochs),
        "--batch-size", "4", "--img-size", "32", "--workers", "0", "--device", "cpu",
        "--no-pretrained",
    ]  # fmt: skip


def env() -> dict[str, str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("CAMTOOL_")}
    variables["PYTHONPATH"] = os.pathsep.join([str(ROOT), variables.get("PYTHONPATH", "")])
    variables["CAMTOOL_DATASET__VAL_SIZE"] = "4"
    variables["CAMTOOL_DATASET__NAME"] = "folder"
    variables["OMP_NUM_THREADS"] = "1"  # tiny models: threads only contend on 2 shared cores
    return variables


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"exited early: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out: {process.communicate()}")
        time.sleep(0.05)


def terminate(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=60)
    return process.returncode, err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("camtool: error:")]


# ---------------------------------------------------------------------------------------------
# 1. SIGTERM is Ctrl-C, in every command


def test_sigterm_during_train_saves_last_pt_and_exits_143(shapes: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    command = [sys.executable, "-m", "camtool", *train_args(shapes, folder, epochs=500)]
    process = subprocess.Popen(command, env=env(), text=True, stderr=subprocess.PIPE)
    wait_for(lambda: (folder / METRICS_FILE).is_file(), process, 120)
    code, stderr = terminate(process)
    assert code == EXIT_TERMINATED == 143
    assert error_lines(stderr) == [
        "camtool: error: terminated (SIGTERM); resume with camtool train --resume "
        f"--checkpoint-dir {folder}"
    ]
    assert "Traceback" not in stderr
    state = load_checkpoint(folder / LAST_FILE).training
    assert state is not None and state["epoch"] >= 1 and state["complete"]
    hidden = sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
    assert hidden in ([], [LOCK_NAME])  # no temporary files (the lock file may stay)


BLOCKER = textwrap.dedent(
    """
    import importlib, pathlib, sys, time
    ready, module, attr, *args = sys.argv[1:]
    target = importlib.import_module(module)
    *owners, name = attr.split(".")
    for owner in owners:
        target = getattr(target, owner)
    def block(*_args, **_kwargs):
        pathlib.Path(ready).write_text("x")
        time.sleep(120)
    setattr(target, name, block)
    from camtool.cli import app
    sys.argv = ["camtool", *args]
    app()
    """
)


def run_blocked(tmp_path: Path, where: str, args: list[str]) -> subprocess.Popen[str]:
    """Run ``camtool ARGS`` with ``module:attr`` replaced by a function that waits forever."""
    module, attr = where.split(":")
    ready = tmp_path / "ready"
    command = [sys.executable, "-c", BLOCKER, str(ready), module, attr, *args]
    process = subprocess.Popen(command, env=env(), text=True, stderr=subprocess.PIPE)
    wait_for(ready.is_file, process, 120)
    return process


def test_sigterm_during_export_leaves_no_temp_file(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["export", "--model", str(tiny_checkpoint), "-o", str(out / "model.onnx")]
    process = run_blocked(tmp_path, "camtool.export.exporter:_check", args)
    assert next(p.name for p in out.iterdir()).startswith(".model.onnx.")  # the temp is there
    code, stderr = terminate(process)
    assert code == 143 and error_lines(stderr) == ["camtool: error: terminated (SIGTERM)"]
    assert list(out.iterdir()) == []


def test_sigterm_during_demo_releases_its_lock(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["demo", "-o", str(out)]
    process = run_blocked(tmp_path, "camtool.data.synthetic:make_shapes_dataset", args)
    assert (out / LOCK_NAME).is_file()
    code, stderr = terminate(process)
    assert code == 143 and error_lines(stderr) == ["camtool: error: terminated (SIGTERM)"]
    with folder_lock(out, "demo"):  # released
        pass


def test_sigterm_during_eval_is_one_line(tiny_checkpoint: Path, tmp_path: Path) -> None:
    args = ["eval", "--model", str(tiny_checkpoint), "--data-dir", str(tmp_path)]
    process = run_blocked(tmp_path, "camtool.evaluation.evaluate:run_eval", args)
    code, stderr = terminate(process)
    assert code == 143 and error_lines(stderr) == ["camtool: error: terminated (SIGTERM)"]
    assert "Traceback" not in stderr


class StallingHandler(BaseHTTPRequestHandler):
    """Sends a large file slowly (256 KiB every 50 ms) until the test ends."""

    release = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(2**30))
        self.end_headers()
        while not self.release.wait(0.05):
            try:
                self.wfile.write(b"x" * 2**18)
                self.wfile.flush()
            except OSError:
                return

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stalling_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StallingHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/imagenette2-160.tgz"
    finally:
        StallingHandler.release.set()
        server.shutdown()
        server.server_close()


def test_sigterm_during_download_keeps_the_part_file(stalling_server: str, tmp_path: Path) -> None:
    args = ["download", "--url", stalling_server, "--sha256", "0" * 64, "--data-dir", str(tmp_path)]
    command = [sys.executable, "-m", "camtool", *args]
    process = subprocess.Popen(command, env=env(), text=True, stderr=subprocess.PIPE)
    part = tmp_path / "imagenette2-160.tgz.part"
    wait_for(lambda: part.is_file() and part.stat().st_size > 0, process, 60)
    code, stderr = terminate(process)
    assert code == 143 and error_lines(stderr) == ["camtool: error: terminated (SIGTERM)"]
    assert part.stat().st_size > 0  # kept, to resume


# ---------------------------------------------------------------------------------------------
# 2. A full disk


def full_disk_save(*_args: Any, **_kwargs: Any) -> None:
    raise RuntimeError(
        "[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing file "
        "data/3: file write failed"
    )


def test_full_disk_during_train_is_one_line_and_keeps_last_pt(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = copy_of(finished_run, tmp_path)
    before = (folder / LAST_FILE).read_bytes()
    monkeypatch.setattr(torch, "save", full_disk_save)
    monkeypatch.setattr("shutil.disk_usage", lambda _path: shutil._ntuple_diskusage(9, 9, 0))
    args = ["train", "--resume", "--checkpoint-dir", str(folder), "--epochs", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    [line] = error_lines(result.stderr)
    pattern = rf"camtool: error: cannot write checkpoint {re.escape(str(folder))}/\S+\.pt: "
    assert re.fullmatch(pattern + "No space left on device", line), line
    assert (folder / LAST_FILE).read_bytes() == before
    assert not [p for p in folder.iterdir() if p.name.startswith(".") and p.name != LOCK_NAME]


def test_a_failed_write_that_is_not_a_full_disk_names_the_cause(tmp_path: Path) -> None:
    from camtool.fsutil import atomic_path

    with pytest.raises(OSError, match="write failed") as caught, atomic_path(tmp_path / "a.pt"):
        full_disk_save()  # plenty of space here: a write failure of another kind
    assert caught.value.errno == errno.EIO and caught.value.filename == str(tmp_path / "a.pt")


def test_enospc_in_an_atomic_write_names_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.txt").write_text("old")

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError) as caught:
        atomic_write_bytes(tmp_path / "a.txt", b"new")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "a.txt")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old"


def test_a_short_manifest_write_is_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = ManifestWriter(tmp_path)
    writer.append({"path": "a.png", "status": "ok"})
    real_write = os.write
    calls = {"n": 0}

    def short_then_full(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, data[:7])  # the disk filled up mid-line
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_full)
    with pytest.raises(CamtoolError, match="No space left on device"):
        writer.append({"path": "b.png", "status": "ok"})
    monkeypatch.undo()
    text = (tmp_path / MANIFEST_JSONL).read_text()
    assert text.endswith("}\n") and text.count("\n") == 1  # the torn line is gone
    assert [row["path"] for row in read_rows(tmp_path / MANIFEST_JSONL)] == ["a.png"]


# ---------------------------------------------------------------------------------------------
# 3. One run per folder


LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    from camtool.process import folder_lock
    with folder_lock(sys.argv[1], "train"):
        print("locked", flush=True)
        time.sleep(120)
    """
)


def test_a_second_train_into_a_locked_folder_is_refused(shapes: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    command = [sys.executable, "-c", LOCK_HOLDER, str(folder)]
    holder = subprocess.Popen(command, env=env(), text=True, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = runner.invoke(app, train_args(shapes, folder, epochs=1))
        assert result.exit_code == 1
        assert error_lines(result.stderr) == [
            f"camtool: error: {folder} is in use by another camtool train run (pid "
            f"{holder.pid}); wait for it to finish, or choose another folder"
        ]
        assert not (folder / LAST_FILE).exists()
    finally:
        holder.kill()  # kill -9: its lock dies with it
        holder.wait()
    assert (folder / LOCK_NAME).is_file()  # the stale lock file stays ...
    with folder_lock(folder, "train"):  # ... and is no obstacle
        pass


def test_demo_into_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    with folder_lock(tmp_path, "demo"):
        result = runner.invoke(app, ["demo", "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert error_lines(result.stderr)[0].startswith(
        f"camtool: error: {tmp_path} is in use by another camtool demo run (pid {os.getpid()})"
    )


# ---------------------------------------------------------------------------------------------
# 4. Nothing replaced that camtool did not write


def test_demo_does_not_replace_a_foreign_best_pt(tmp_path: Path) -> None:
    foreign = tmp_path / "checkpoints" / BEST_FILE
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"mine")
    result = runner.invoke(app, ["demo", "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert error_lines(result.stderr) == [
        f"camtool: error: {foreign} was not written by camtool demo; pass --overwrite to "
        f"replace the files in {foreign.parent}, or choose another -o DIR"
    ]
    assert foreign.read_bytes() == b"mine" and not (tmp_path / "data").exists()


def test_export_does_not_replace_a_file_unless_asked(tiny_checkpoint: Path, tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"mine")
    args = ["export", "--model", str(tiny_checkpoint), "-o", str(target)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and target.read_bytes() == b"mine"
    assert error_lines(result.stderr) == [
        f"camtool: error: {target} exists; pass --overwrite to replace it, or choose another "
        "-o FILE"
    ]
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert target.read_bytes() != b"mine"


def test_train_does_not_replace_a_foreign_best_pt(shapes: Path, tmp_path: Path) -> None:
    (tmp_path / BEST_FILE).write_bytes(b"mine")
    with pytest.raises(CamtoolError, match="start afresh with camtool train --overwrite"):
        train(tiny_train_settings(shapes, tmp_path))
    assert (tmp_path / BEST_FILE).read_bytes() == b"mine"


# ---------------------------------------------------------------------------------------------
# 5. Loader workers die with their parent


ORPHAN_MAKER = textwrap.dedent(
    """
    import os, sys, time
    import torch
    from torch.utils.data import Dataset
    from camtool.data.datasets import make_loader

    class Slow(Dataset):
        def __len__(self):
            return 1000
        def __getitem__(self, i):
            time.sleep(0.2)
            return torch.zeros(1), 0

    loader = make_loader(Slow(), 1, shuffle=False, workers=2, pin_memory=False)
    batches = iter(loader)
    next(batches)
    print(" ".join(str(w.pid) for w in batches._workers), flush=True)
    time.sleep(120)
    """
)


def test_loader_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    command = [sys.executable, "-c", ORPHAN_MAKER]
    parent = subprocess.Popen(command, env=env(), text=True, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        time.sleep(0.05)
    assert alive == []


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_every_worker_pool_in_camtool_uses_the_worker_init() -> None:
    for path in (ROOT / "camtool").rglob("*.py"):
        text = path.read_text()
        for call in re.finditer(r"\b(DataLoader|ProcessPoolExecutor)\(", text):
            end = text.find(")\n", call.start())
            assert "=worker_init(" in text[call.start() : end], f"{path}: {call.start()}"


# ---------------------------------------------------------------------------------------------
# 6. Stale temporary files


def test_stale_temps_are_removed_once_an_hour_old_and_nothing_else(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "best.pt") as live:  # a writer at work (maybe in a container)
        live.write_bytes(b"x")
        old = time.time() - 2 * STALE_AFTER_S
        stale = tmp_path / ".last.pt.k3j9x_2a.tmp.pt"
        legacy = tmp_path / ".last.pt.4242-0123abcd.tmp.pt"  # named by an older camtool
        other = tmp_path / ".notes.tmp"
        young = tmp_path / ".best.pt.aaaaaaaa.tmp.pt"
        scratch = tmp_path / f"{SCRATCH_PREFIX}export-x1y2"
        for path in (stale, legacy, other, young):
            path.write_bytes(b"x")
        scratch.mkdir()
        for path in (stale, legacy, other, scratch):
            os.utime(path, (old, old))
        assert sorted(remove_stale_temps(tmp_path)) == sorted([stale, legacy, scratch])
        left = {live.name, other.name, young.name}
        assert {p.name for p in tmp_path.iterdir()} == left
    assert (tmp_path / "best.pt").read_bytes() == b"x"


def test_atomic_writes_keep_the_usual_file_mode(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    plain = tmp_path / "b.bin"
    plain.write_bytes(b"x")
    assert (tmp_path / "a.bin").stat().st_mode == plain.stat().st_mode


def test_train_removes_the_stale_temps_in_its_folder(
    shapes: Path, finished_run: Path, tmp_path: Path
) -> None:
    folder = copy_of(finished_run, tmp_path)
    stale = folder / ".last.pt.999999999-0123abcd.tmp.pt"
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - 2 * STALE_AFTER_S,) * 2)
    train(tiny_train_settings(shapes, folder), resume=True)  # nothing left to train
    assert not stale.exists()


# ---------------------------------------------------------------------------------------------
# 7. A damaged last.pt, a kill between two writes


def test_a_corrupt_last_pt_names_the_way_out(shapes: Path, tmp_path: Path) -> None:
    (tmp_path / LAST_FILE).write_bytes(b"half a checkpoint")
    resumed = runner.invoke(app, ["train", "--resume", "--checkpoint-dir", str(tmp_path)])
    assert resumed.exit_code == 1
    [line] = error_lines(resumed.stderr)
    assert "not a readable PyTorch checkpoint" in line
    assert f"start afresh with camtool train --overwrite --checkpoint-dir {tmp_path}" in line
    fresh = runner.invoke(app, train_args(shapes, tmp_path, epochs=1))
    assert fresh.exit_code == 1
    [line] = error_lines(fresh.stderr)
    assert f"{tmp_path} holds an unreadable last.pt" in line and "--overwrite" in line
    again = runner.invoke(app, [*train_args(shapes, tmp_path, epochs=1), "--overwrite"])
    assert again.exit_code == 0, again.output


def test_a_fresh_run_over_an_old_one_says_resume_or_overwrite(
    shapes: Path, finished_run: Path, tmp_path: Path
) -> None:
    folder = copy_of(finished_run, tmp_path)
    result = runner.invoke(app, train_args(shapes, folder, epochs=1))
    assert result.exit_code == 1
    assert error_lines(result.stderr) == [
        f"camtool: error: {folder} already holds a training run (last.pt); continue it with "
        f"camtool train --resume --checkpoint-dir {folder}, start afresh with --overwrite, or "
        "choose another --checkpoint-dir"
    ]


def test_resume_writes_a_numbered_checkpoint_a_kill_prevented(
    shapes: Path, finished_run: Path, tmp_path: Path
) -> None:
    folder = copy_of(finished_run, tmp_path)
    (folder / "epoch_002.pt").unlink()  # killed after last.pt, before epoch_002.pt
    result = train(tiny_train_settings(shapes, folder), resume=True)
    assert result.epochs_run == 2
    assert load_checkpoint(folder / "epoch_002.pt").training["epoch"] == 2  # type: ignore[index]


# ---------------------------------------------------------------------------------------------
# Checkpoint contents (issue 15, item 8)


def test_only_last_pt_keeps_the_optimizer_moments(finished_run: Path) -> None:
    tmp_path = finished_run
    last = torch.load(tmp_path / LAST_FILE, weights_only=True)["training"]
    best = torch.load(tmp_path / BEST_FILE, weights_only=True)["training"]
    numbered = torch.load(tmp_path / "epoch_002.pt", weights_only=True)["training"]
    assert last["complete"] and len(last["optimizer"]["state"]) > 0
    for slim in (best, numbered):
        assert not slim["complete"] and slim["optimizer"]["state"] == {}
        assert slim["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.001)
        assert {"epoch", "history", "scheduler", "rng"} <= set(slim)
    sizes = {p.name: p.stat().st_size for p in tmp_path.glob("*.pt")}
    assert sizes[BEST_FILE] < 0.4 * sizes[LAST_FILE]  # Adam: moments are twice the weights


def test_resume_from_a_numbered_checkpoint_restarts_the_optimizer(
    shapes: Path, finished_run: Path, tmp_path: Path
) -> None:
    from camtool.training.types import SilentObserver, TrainPlan

    class Plans(SilentObserver):
        plan: TrainPlan | None = None

        def on_start(self, plan: TrainPlan) -> None:
            self.plan = plan

    folder = copy_of(finished_run, tmp_path)
    observer = Plans()
    more = tiny_train_settings(shapes, folder, num_epochs=3)
    result = train(more, resume=folder / "epoch_002.pt", observer=observer)
    assert result.epochs_run == 3
    assert observer.plan is not None and observer.plan.optimizer_restarted
    assert observer.plan.start_epoch == 3


def test_cam_does_not_replace_a_file_it_did_not_write(
    tiny_checkpoint: Path, photo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "maps"
    foreign = out / "photo_cam.png"
    foreign.parent.mkdir()
    foreign.write_bytes(b"mine")
    args = ["cam", str(photo), "--model", str(tiny_checkpoint), "-o", str(out)]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and foreign.read_bytes() == b"mine"
    assert error_lines(refused.stderr) == [
        f"camtool: error: {foreign} exists and camtool did not write it; pass --overwrite to "
        "replace it, or choose another -o DIR"
    ]
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert foreign.read_bytes()[:4] == b"\x89PNG"
    assert runner.invoke(app, args).exit_code == 0  # its own output: replaced without asking


def test_eval_does_not_replace_a_file_it_did_not_write(shapes: Path, tmp_path: Path) -> None:
    from camtool.core.checkpoint import save_checkpoint
    from camtool.core.model import CAMNet

    model = tmp_path / "m.pt"
    save_checkpoint(model, CAMNet("resnet18", 2), class_names=["circle", "square"], img_size=32)
    out = tmp_path / "results"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    args = ["eval", "--model", str(model), "--data-dir", str(shapes), "-o", str(out)]
    args += ["--metrics", "classification", "--workers", "0"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and (out / "metrics.json").read_text() == "{}"
    assert "metrics.json exists and camtool did not write it" in refused.stderr
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert (out / "metrics.json").read_text() != "{}"
