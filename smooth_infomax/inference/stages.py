"""The stage loop, written once: convs -> head -> GRU -> collect, module after module, for every path through the
encoder (training ``forward``, ``forward_features``, the folded fast path, and each chunk of a long clip)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch

from ..geometry import FrameGeometry
from ..layers import gaussian_sample
from ..outputs import ModuleFeatures
from .convs import mask_tail_

StepT = TypeVar("StepT")
CollectedT = TypeVar("CollectedT", covariant=True)


class StagePath(Protocol[StepT, CollectedT]):
    """One way through the modules. ``StepT`` is what a module hands on (its output and lengths, in the path's
    layout); ``CollectedT`` is what the caller keeps of a requested module."""

    def encode(self, m: int, previous: StepT) -> StepT:
        """Module ``m``'s convs and head on what module ``m - 1`` handed on (the identity without convs)."""
        ...

    def recur(self, m: int, step: StepT) -> StepT:
        """Module ``m``'s GRU on its encoded ``step`` (the identity without a GRU)."""
        ...

    def collect(self, m: int, step: StepT) -> CollectedT:
        """What the caller keeps of module ``m``."""
        ...


def run_stages(path: StagePath[StepT, CollectedT], start: StepT, modules: Sequence[int],
               first: int = 0) -> list[CollectedT]:
    """Run modules ``first .. max(modules)`` on ``start`` (the input of module ``first``); stops after the deepest
    requested module. Returns what ``path`` collects of each module in ``modules``, in encoder order."""
    wanted, collected, step = set(modules), [], start
    for m in range(first, max(modules) + 1):
        step = path.recur(m, path.encode(m, step))
        if m in wanted:
            collected.append(path.collect(m, step))
    return collected


@dataclass(frozen=True)
class Step:
    """A module's output: ``mean`` (and ``logvar``, or ``None``) in the path's layout, ``lengths (batch,)`` valid
    frames."""

    mean: torch.Tensor
    logvar: torch.Tensor | None
    lengths: torch.Tensor


@dataclass(frozen=True)
class Request:
    """What a caller of ``extract`` asks for.

    Attributes:
        modules: sorted, non-negative module indices.
        sample: also draw a reparameterised sample per Gaussian module (from ``generator``).
        logvar: compute the log-variance heads.
    """

    modules: tuple[int, ...]
    sample: bool = False
    generator: torch.Generator | None = None
    logvar: bool = True

    @property
    def want_logvar(self) -> bool:
        """Whether the log-variance heads must run: for the log-variances or to draw samples."""
        return self.logvar or self.sample


def module_features(index: int, mean: torch.Tensor, logvar: torch.Tensor | None, lengths: torch.Tensor,
                    geometry: FrameGeometry, request: Request) -> ModuleFeatures:
    """``ModuleFeatures`` of module ``index`` from channels-last ``mean``/``logvar`` ``(batch, frames, dim)``, with a
    sample drawn from ``request.generator`` when ``request.sample`` asks for it."""
    drawn = mean
    if request.sample and logvar is not None:
        drawn = gaussian_sample(mean, logvar, request.generator)
        drawn = mask_tail_(drawn, lengths.cpu())
    return ModuleFeatures(index, mean, logvar, drawn, lengths.cpu(), geometry)
