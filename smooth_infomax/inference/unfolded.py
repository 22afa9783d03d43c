"""The modules' own forward passes, channels-first ``(batch, dim, frames)``, through ``run_stages``: the training pass
(``SmoothInfoMaxEncoder.forward``) and the differentiable features (``forward_features``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..config import EncoderConfig
from ..geometry import FrameGeometry, min_input_samples
from ..layers import EncoderModule, gaussian_sample, mask_frames
from ..outputs import ModuleFeatures, ModuleTrainOutput
from .stages import Request, Step, module_features, run_stages


@dataclass(frozen=True)
class TrainStep:
    """A module's training outputs, channels-first ``(batch, dim, frames)``; ``handed_on`` is the next module's
    input."""

    context: torch.Tensor
    target: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor | None
    lengths: torch.Tensor
    handed_on: torch.Tensor


class TrainingPath:
    """Gaussian modules draw two samples (context and target); the next module reads the target, detached."""

    def __init__(self, stages: Sequence[EncoderModule], generator: torch.Generator | None):
        self.stages, self.generator = stages, generator

    def encode(self, m: int, previous: TrainStep) -> TrainStep:
        stage, x, lengths = self.stages[m], previous.handed_on, previous.lengths
        mean, logvar, lengths = stage.encode(x, lengths) if stage.convs else (x, None, lengths)
        if logvar is not None:
            context = mask_frames(gaussian_sample(mean, logvar, self.generator), lengths)
            target = mask_frames(gaussian_sample(mean, logvar, self.generator), lengths)
        else:
            context = target = mean
        return TrainStep(context, target, mean, logvar, lengths, target.detach())

    def recur(self, m: int, step: TrainStep) -> TrainStep:
        stage = self.stages[m]
        if stage.gru is None:
            return step
        context, _ = stage.recur(step.target, step.lengths)
        return TrainStep(context, step.target, context, step.logvar, step.lengths, step.handed_on)

    def collect(self, m: int, step: TrainStep) -> ModuleTrainOutput:
        logvar = None if step.logvar is None else step.logvar.transpose(1, 2)
        return ModuleTrainOutput(step.context.transpose(1, 2), step.target.transpose(1, 2), step.mean.transpose(1, 2),
                                 logvar, step.lengths)


class ModulesPath:
    """Means flow from module to module; each requested module's features are collected channels-last."""

    def __init__(self, stages: Sequence[EncoderModule], geometries: Sequence[FrameGeometry], request: Request):
        self.stages, self.geometries, self.request = stages, geometries, request

    def encode(self, m: int, previous: Step) -> Step:
        stage = self.stages[m]
        if not stage.convs:
            return Step(previous.mean, None, previous.lengths)
        return Step(*stage.encode(previous.mean, previous.lengths))

    def recur(self, m: int, step: Step) -> Step:
        stage = self.stages[m]
        if stage.gru is None:
            return step
        return Step(stage.recur(step.mean, step.lengths)[0], step.logvar, step.lengths)

    def collect(self, m: int, step: Step) -> ModuleFeatures:
        logvar = None if step.logvar is None else step.logvar.transpose(1, 2).contiguous()
        return module_features(m, step.mean.transpose(1, 2).contiguous(), logvar, step.lengths, self.geometries[m],
                               self.request)


def train_outputs(stages: Sequence[EncoderModule], config: EncoderConfig, waveform: torch.Tensor,
                  lengths: torch.Tensor | None, generator: torch.Generator | None) -> list[ModuleTrainOutput]:
    """``SmoothInfoMaxEncoder.forward``: ``waveform (batch, samples)`` or ``(batch, 1, samples)``, ``lengths
    (batch,)`` valid samples (default: all). Returns one ``ModuleTrainOutput`` per module."""
    x = waveform if waveform.ndim == 3 else waveform.unsqueeze(1)
    if lengths is None:
        lengths = torch.full((x.shape[0],), x.shape[-1], dtype=torch.long, device=x.device)
    x = mask_frames(x * config.input_gain + config.input_offset, lengths)
    start = TrainStep(x, x, x, None, lengths, x)
    return run_stages(TrainingPath(stages, generator), start, range(len(stages)))


def differentiable_features(stages: Sequence[EncoderModule], config: EncoderConfig,
                            geometries: Sequence[FrameGeometry], waveform: torch.Tensor,
                            lengths: torch.Tensor | None, request: Request) -> list[ModuleFeatures]:
    """``SmoothInfoMaxEncoder.forward_features``: ``waveform (batch, samples)``, ``lengths (batch,)`` valid samples
    (default: all). Returns one ``ModuleFeatures`` per requested module, with gradients."""
    if lengths is None:
        lengths = torch.full((waveform.shape[0],), waveform.shape[-1], dtype=torch.long, device=waveform.device)
    x = waveform.unsqueeze(1)
    needed = min_input_samples(config)
    if x.shape[-1] < needed:
        x = nn.functional.pad(x, (0, needed - x.shape[-1]))
    x = mask_frames(x * config.input_gain + config.input_offset, lengths)
    return run_stages(ModulesPath(stages, geometries, request), Step(x, None, lengths), request.modules)
