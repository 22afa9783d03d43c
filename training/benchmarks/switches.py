"""Every trick of the fast extraction path, and how ``tricks`` switches each off without changing the library.

A ``Setup`` says which tricks are on. The library runs unchanged for the default ``Setup``; any other one changes
only what the benchmark hands the library:
- folded modules built differently (``variant_model``, folded at every call as the library folds its own):
  ``SwitchedConv`` (a ``FoldedConv`` that applies BatchNorm as a pass of its own, ReLU out of place, Winograd taps
  removed from every conv or from the first layer only, which then runs as ``F.conv1d``), handed to ``extract``
  through the encoder's ``_folded_encoder`` hook (patched on the instance, the benchmark's one reach into the
  encoder);
- ``extract``'s own arguments (chunk and piece sizes, ``logvar``) and the way it is called (batched or not);
- functions patched for the duration of a call (``patched``): ``folding.run_gru`` (the GRU left under autocast)
  and ``encoder.slow_dtype_reason`` (the private mkldnn check).
Not switchable without editing the library, so not measured: features written from the array without a bytes copy
(``SafetensorsStream.write_rows``) and a long clip's chunk rows copied into preallocated outputs
(``chunks._place_rows``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import cast
from unittest import mock

import torch
from torch import nn

import smooth_infomax.encoder
from smooth_infomax.audio import SAMPLE_RATE
from smooth_infomax.inference import FoldedEncoder, compute_dtype, default_sizes_s, folding
from smooth_infomax.inference.convs import FoldedConv, block_taps, mask_tail_
from smooth_infomax.inference.folding import fold_module
from smooth_infomax.layers import ConvBlock, EncoderModule


@dataclass(frozen=True)
class Setup:
    """Which tricks are on (all by default: the library as it ships). ``winograd`` off: every conv as ``F.conv1d``;
    ``first_layer_winograd`` off: the first layer only. ``chunks`` / ``pieces`` off: the sizes a GPU gets
    (``default_sizes_s("cuda")``: 30 s and 60 s), which no clip of 1-20 s reaches. ``num_workers``:
    ``sim-extract``'s ``--num-workers`` (``None``: its default)."""

    path: str = "extract"  # or "sim-extract"
    bn_folded: bool = True
    relu_in_place: bool = True
    winograd: bool = True
    first_layer_winograd: bool = True
    gru_outside_autocast: bool = True
    chunks: bool = True
    pieces: bool = True
    mkldnn_check: bool = True
    logvar: bool = True
    batched: bool = True
    num_workers: int | None = None

    @property
    def changes_convs(self) -> bool:
        return not (self.bn_folded and self.relu_in_place and self.winograd and self.first_layer_winograd)

    def extract_kwargs(self) -> dict[str, object]:
        """``extract``'s arguments for this setup."""
        chunk_s, piece_s = default_sizes_s("cuda")
        kwargs: dict[str, object] = {"logvar": self.logvar}
        if not self.chunks:
            kwargs["chunk_samples"] = int(chunk_s * SAMPLE_RATE)
        if not self.pieces:
            kwargs["piece_samples"] = int(piece_s * SAMPLE_RATE)
        return kwargs

    def cli_options(self) -> tuple[str, ...]:
        return () if self.num_workers is None else ("--num-workers", str(self.num_workers))


@dataclass(frozen=True)
class SwitchedConv(FoldedConv):
    """A ``FoldedConv`` with tricks switched off: ``scale_shift`` (BatchNorm as its own pass after the conv, the
    weights then unfolded) and ReLU out of place (Winograd off: built without ``taps``)."""

    scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None
    relu_in_place: bool = True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = FoldedConv(self.weight, self.bias, self.stride, self.padding, False, self.taps)(x)
        if self.scale_shift is not None:
            y = torch.addcmul(self.scale_shift[1], y, self.scale_shift[0])
        if not self.relu:
            return y
        return torch.relu_(y) if self.relu_in_place else torch.relu(y)


def variant_model(encoder: smooth_infomax.encoder.SmoothInfoMaxEncoder, setup: Setup,
                  dtype: torch.dtype) -> FoldedEncoder:
    """The encoder's folded modules for ``dtype`` with ``setup``'s tricks switched off (folded anew)."""
    device = next(encoder.parameters()).device
    modules = []
    for m, stage in enumerate(cast("list[EncoderModule]", encoder.stages)):
        module = fold_module(stage, dtype, device)
        if setup.changes_convs:
            blocks = cast("list[ConvBlock]", stage.convs)
            convs = tuple((_switched(conv, block, setup, dtype, first=m == 0 and i == 0), layer)
                          for i, ((conv, layer), block) in enumerate(zip(module.convs, blocks, strict=True)))
            module = dataclasses.replace(module, convs=convs)
        modules.append(module)
    return FoldedEncoder(encoder.config, encoder.geometries, tuple(modules), dtype, device)


def _switched(conv: FoldedConv, block: ConvBlock, setup: Setup, dtype: torch.dtype, first: bool) -> SwitchedConv:
    weight, bias, taps, scale_shift = conv.weight, conv.bias, conv.taps, None
    if not setup.bn_folded and block.norm is not None:
        raw = block.conv.weight.detach().float()
        weight, bias = raw.to(dtype), cast(torch.Tensor, block.conv.bias).detach().to(dtype)
        taps = None if taps is None else block_taps(raw, conv.stride).to(dtype)
        scale_shift = _scale_shift(block.norm, dtype)
    if not setup.winograd or (first and not setup.first_layer_winograd):
        taps = None
    return SwitchedConv(weight, bias, conv.stride, conv.padding, conv.relu, taps, scale_shift, setup.relu_in_place)


def _scale_shift(norm: nn.BatchNorm1d, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """BatchNorm in eval mode as ``y * scale + shift``."""
    assert norm.running_mean is not None and norm.running_var is not None
    scale = norm.weight.detach().float() / torch.sqrt(norm.running_var.float() + norm.eps)
    shift = norm.bias.detach().float() - norm.running_mean.float() * scale
    return scale.to(dtype), shift.to(dtype)


def run_gru_under_autocast(gru: nn.GRU, x: torch.Tensor, lengths: torch.Tensor,
                           state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``gru.run_gru`` with autocast left on: under 16-bit autocast every time step casts the weights again."""
    dtype = cast(torch.Tensor, gru.weight_hh_l0).dtype
    out, state = gru(x, state)
    return mask_tail_(out.to(dtype), lengths), state.to(dtype)


@contextlib.contextmanager
def patched(encoder, setup: Setup):
    """While it is entered, ``encoder.extract`` (and ``sim-extract``) run with ``setup``'s tricks; with switched
    convs, every ``extract`` call folds its modules anew, as the library does."""
    with contextlib.ExitStack() as stack:
        if setup.changes_convs:

            def folded_encoder() -> FoldedEncoder:
                return variant_model(encoder, setup, compute_dtype(next(encoder.parameters())))

            stack.enter_context(mock.patch.object(encoder, "_folded_encoder", folded_encoder))
        if not setup.gru_outside_autocast:
            stack.enter_context(mock.patch.object(folding, "run_gru", run_gru_under_autocast))
        if not setup.mkldnn_check:
            stack.enter_context(mock.patch.object(smooth_infomax.encoder, "slow_dtype_reason", lambda *_: None))
        yield
