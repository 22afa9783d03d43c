"""Which way ``extract`` computes a batch on the folded modules: one long clip in chunks, a large batch in pieces
(then the GRU once for the batch), anything else in one pass."""

from __future__ import annotations

import torch

from ..outputs import ModuleFeatures
from .chunks import chunked_features, is_chunked
from .folded import folded_pass, later_modules, padded_to_min_input
from .folding import FoldedEncoder
from .machine import Sizes
from .pieces import conv_modules_in_pieces, leading_conv_modules
from .stages import Request, module_features


def folded_features(model: FoldedEncoder, waveform: torch.Tensor, lengths: torch.Tensor, request: Request,
                    sizes: Sizes) -> list[ModuleFeatures]:
    """``extract``'s features of ``waveform (batch, samples)`` with ``lengths (batch,)`` valid samples, through the
    folded modules (every BatchNorm in eval mode). Returns one ``ModuleFeatures`` per requested module."""
    deepest = max(request.modules)
    if is_chunked(model.config, waveform.shape[0], waveform.shape[-1], deepest, sizes.chunk_samples):
        return chunked_features(model, waveform[0], request, sizes.chunk_samples)
    waveform, lengths = padded_to_min_input(waveform, model.min_input_samples), lengths.cpu()
    convs = leading_conv_modules(model, deepest)
    if waveform.shape[0] == 1 or waveform.numel() <= sizes.piece_samples or not convs:
        return folded_pass(model, waveform, lengths, request)
    parts = conv_modules_in_pieces(model, waveform, lengths, convs, request.want_logvar, sizes)
    features = [module_features(p.index, p.mean, p.logvar, p.lengths, p.geometry, request)
                for p in parts if p.index in request.modules]
    return features + later_modules(model, parts[-1], request)
