"""Distributed training: a stand-in step leaves no trace in BatchNorm; only rank 0 clears."""

from __future__ import annotations

from pathlib import Path

import torch

from camtool.core.model import CAMNet
from camtool.training.build import TrainParts
from camtool.training.checkpoints import LAST_FILE, prepare_fresh_dir


def test_an_empty_batch_under_ddp_steps_with_zero_weight_and_no_batchnorm_trace() -> None:
    torch.manual_seed(0)
    model = CAMNet("resnet18", 3).train()
    model(torch.rand(4, 3, 32, 32) * 5)  # running statistics away from their initial values
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    parts = TrainParts(model, model, None, None, optimizer, None, channels_last=False)
    images, labels = torch.zeros(0, 3, 32, 32), torch.zeros(0, dtype=torch.long)
    loss, hits = parts.step(images, labels, torch.device("cpu"), stand_in=True, img_size=32)
    assert float(loss) == 0.0 and int(hits) == 0
    after = {k: v for k, v in model.state_dict().items() if "running" in k}
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert model.training  # back in train mode
    grads = [p.grad for p in model.parameters()]
    assert any(g is not None for g in grads)  # it took part in the backward pass ...
    assert all(g is None or not g.any() for g in grads)  # ... with zero weight


def test_only_the_clearing_rank_deletes_and_every_rank_refuses(tmp_path: Path) -> None:
    (tmp_path / LAST_FILE).write_bytes(b"x")
    prepare_fresh_dir(tmp_path, overwrite=True, clear=False)  # rank 1 of an --overwrite run
    assert (tmp_path / LAST_FILE).exists()
    prepare_fresh_dir(tmp_path, overwrite=True, clear=True)  # rank 0
    assert not (tmp_path / LAST_FILE).exists()
