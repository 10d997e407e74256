"""What ``camtool export`` reports: the graph's inputs and outputs and how its check went."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from camtool.errors import CamtoolError

__all__ = ["TOLERANCE", "ExportCheckError", "ExportReport", "SampleCheck", "TensorSpec"]

#: Largest allowed |export - PyTorch|, relative to max(1, max |PyTorch|), per output.
TOLERANCE = 1e-3


@dataclass
class TensorSpec:
    """One input or output of the exported graph; named dimensions are dynamic."""

    name: str
    shape: list[int | str]
    dtype: str = "float32"


@dataclass
class SampleCheck:
    """How one sample input's outputs compare with PyTorch's."""

    input_shape: list[int]
    logits_shape: list[int]
    cams_shape: list[int]
    logits_max_diff: float
    cams_max_diff: float
    logits_limit: float  #: TOLERANCE * max(1, max |PyTorch logits|)
    cams_limit: float  #: TOLERANCE * max(1, max |PyTorch cams|)
    same_prediction: bool

    @property
    def passed(self) -> bool:
        return self.logits_max_diff <= self.logits_limit and self.cams_max_diff <= self.cams_limit

    @property
    def worst(self) -> float:
        """The larger ratio of difference to limit of the two outputs."""
        return max(self.logits_max_diff / self.logits_limit, self.cams_max_diff / self.cams_limit)


@dataclass
class ExportReport:
    """What ``camtool export`` wrote and how its check went."""

    file: str
    format: str
    opset: int | None
    checkpoint: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    samples: list[SampleCheck]
    tolerance: float = TOLERANCE
    size_bytes: int = 0
    export_seconds: float = 0.0
    check_seconds: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.samples) and all(s.passed for s in self.samples)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``passed`` included, per sample and overall)."""
        doc = asdict(self)
        for sample, entry in zip(self.samples, doc["samples"], strict=True):
            entry["passed"] = sample.passed
        doc["tolerance_rule"] = "max|export - pytorch| <= tolerance * max(1, max|pytorch|)"
        doc["passed"] = self.passed
        return doc

    def refuse_if_failed(self) -> None:
        """Raise :class:`ExportCheckError` (naming the worst ratio to the limit) unless passed."""
        if not self.passed:
            worst = max(sample.worst for sample in self.samples)
            raise ExportCheckError(
                f"export check failed: {self.format} outputs differ from PyTorch by up to "
                f"{worst:.3g}x the tolerance; {self.file} was not written",
                self,
            )


class ExportCheckError(CamtoolError):
    """The exported file does not reproduce the PyTorch model; :attr:`report` says by how much."""

    def __init__(self, message: str, report: ExportReport) -> None:
        super().__init__(message)
        self.report = report
