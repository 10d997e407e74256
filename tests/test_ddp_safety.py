"""Distributed training: a stand-in step leaves no trace in BatchNorm; only rank 0 clears."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from camtool.core.model import CAMNet
from camtool.training.checkpoints import LAST_FILE, prepare_fresh_dir
from camtool.training.loop import _Trainer


def test_a_stand_in_step_changes_no_batchnorm_statistics() -> None:
    torch.manual_seed(0)
    model = CAMNet("resnet18", 3).train()
    model(torch.rand(4, 3, 32, 32) * 5)  # running statistics away from their initial values
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    parts = SimpleNamespace(net=model, optimizer=optimizer, scaler=None, amp_dtype=None,
                            channels_last=False)  # fmt: skip
    settings = SimpleNamespace(dataset=SimpleNamespace(img_size=32))
    trainer = SimpleNamespace(parts=parts, device=torch.device("cpu"), settings=settings)
    trainer._apply = lambda loss: _Trainer._apply(trainer, loss)  # type: ignore[attr-defined]
    _Trainer._stand_in_step(trainer)  # type: ignore[arg-type]
    after = {k: v for k, v in model.state_dict().items() if "running" in k}
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert model.training  # back in train mode
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())  # zero weight


def test_only_the_clearing_rank_deletes_and_every_rank_refuses(tmp_path: Path) -> None:
    (tmp_path / LAST_FILE).write_bytes(b"x")
    prepare_fresh_dir(tmp_path, overwrite=True, clear=False)  # rank 1 of an --overwrite run
    assert (tmp_path / LAST_FILE).exists()
    prepare_fresh_dir(tmp_path, overwrite=True, clear=True)  # rank 0
    assert not (tmp_path / LAST_FILE).exists()
