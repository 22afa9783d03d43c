"""The folded fast path through ``run_stages``: channels-last ``(batch, frames, dim)`` activations, folded modules,
lengths on the CPU (no device syncs)."""

from __future__ import annotations

import torch
from torch import nn

from ..outputs import ModuleFeatures
from .convs import mask_tail_
from .folding import FoldedEncoder
from .stages import Request, Step, module_features, run_stages


class FoldedPath:
    """Means flow from module to module through the folded convs, heads and GRUs."""

    def __init__(self, model: FoldedEncoder, request: Request):
        self.model, self.request = model, request

    def encode(self, m: int, previous: Step) -> Step:
        module = self.model.modules[m]
        if not module.convs:
            return Step(previous.mean, None, previous.lengths)
        return Step(*module.encode(previous.mean, previous.lengths, want_logvar=self.request.want_logvar))

    def recur(self, m: int, step: Step) -> Step:
        module = self.model.modules[m]
        if module.gru is None:
            return step
        return Step(module.recur(step.mean, step.lengths)[0], step.logvar, step.lengths)

    def collect(self, m: int, step: Step) -> ModuleFeatures:
        return module_features(m, step.mean, step.logvar, step.lengths, self.model.geometries[m], self.request)


def padded_to_min_input(waveform: torch.Tensor, min_samples: int) -> torch.Tensor:
    """``waveform (..., samples)`` zero-padded to at least ``min_samples``."""
    if waveform.shape[-1] >= min_samples:
        return waveform
    return nn.functional.pad(waveform, (0, min_samples - waveform.shape[-1]))


def folded_pass(model: FoldedEncoder, waveform: torch.Tensor, lengths: torch.Tensor,
                request: Request) -> list[ModuleFeatures]:
    """Features of ``waveform (batch, samples)`` with ``lengths (batch,)`` valid samples, in one pass (never in
    pieces or chunks)."""
    waveform, lengths = padded_to_min_input(waveform, model.min_input_samples), lengths.cpu()
    x = mask_tail_(model.scaled_input(waveform), lengths)  # (batch, samples, 1)
    return run_stages(FoldedPath(model, request), Step(x, None, lengths), request.modules)


def later_modules(model: FoldedEncoder, computed: ModuleFeatures, request: Request) -> list[ModuleFeatures]:
    """The requested modules after ``computed`` (module ``computed.index``, channels-last), through ``FoldedPath``."""
    start = Step(computed.mean, None, computed.lengths)
    return run_stages(FoldedPath(model, request), start, request.modules, first=computed.index + 1)
