"""Every trick of the fast extraction path, and how ``tricks`` switches each off without changing the library.

A ``Setup`` says which tricks are on. The library runs unchanged for the default ``Setup``; any other one changes
only what the benchmark hands the library:
- folded modules built differently (``variant_model``): ``SwitchedConv`` (a ``FoldedConv`` that applies BatchNorm as
  a pass of its own, ReLU out of place, the first layer or every conv as oneDNN's conv, Winograd taps removed or
  added) and ``AutocastGRU`` (the module's GRU under autocast), handed to ``extract`` through the encoder's
  ``_folded_encoder`` hook (patched on the instance, the benchmark's one reach into the encoder);
- ``extract``'s own arguments (chunk and piece sizes, ``logvar``) and the way it is called (batched or not);
- three functions patched for the duration of a call (``patched``): ``folding.writes_margins`` (margins),
  ``mask_tail_`` where the inference path imports it (masking), ``encoder.slow_dtype_reason`` (the private mkldnn
  check), plus ``extraction.formats._evict`` (page-cache eviction) for ``sim-extract``.
Not switchable without editing the library, so not measured: features written from the array without a bytes copy
(``SafetensorsStream.write_rows``) and a long clip's chunk rows copied into preallocated outputs
(``chunks._place_rows``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

import smooth_infomax.encoder
import smooth_infomax.extraction.formats
from smooth_infomax.audio import SAMPLE_RATE
from smooth_infomax.inference import FoldedEncoder, compute_dtype, default_sizes_s, folding, gru, stages
from smooth_infomax.inference import folded as folded_file
from smooth_infomax.inference.convs import FoldedConv, block_taps, conv_channels_last
from smooth_infomax.inference.folding import conv2d_weight, fold_module


@dataclass(frozen=True)
class Setup:
    """Which tricks are on (all by default: the library as it ships). ``winograd``: ``"auto"`` as the library
    decides, ``"off"`` nowhere, ``"on"`` on every conv whose kernel is twice its stride. ``chunks`` / ``pieces``
    off: the sizes a GPU gets (``default_sizes_s("cuda")``: 30 s and 60 s), which no clip of 1-20 s reaches.
    ``num_workers``: ``sim-extract``'s ``--num-workers`` (``None``: its default)."""

    path: str = "extract"  # or "sim-extract"
    bn_folded: bool = True
    relu_in_place: bool = True
    first_layer_matmul: bool = True
    conv2d_channels_last: bool = True
    winograd: str = "auto"
    margins: bool = True
    masks_only_padding: bool = True
    weights_cached: bool = True
    half_gru: bool = True
    gru_outside_autocast: bool = True
    chunks: bool = True
    pieces: bool = True
    mkldnn_check: bool = True
    logvar: bool = True
    batched: bool = True
    evict: bool = True
    num_workers: int | None = None

    @property
    def changes_modules(self) -> bool:
        return self.changes_convs or not (self.half_gru and self.gru_outside_autocast and self.weights_cached)

    @property
    def changes_convs(self) -> bool:
        return not (self.bn_folded and self.relu_in_place and self.first_layer_matmul and self.conv2d_channels_last
                    and self.winograd == "auto")

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
    weights then unfolded), ReLU out of place, the single-channel first layer as oneDNN's conv, and with
    ``conv1d_weight`` every multi-channel conv as ``F.conv1d`` on channel-first memory (as ``nn.Conv1d``; the 1x1
    heads stay channels-last conv2d, reading that memory)."""

    scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None
    relu_in_place: bool = True
    first_layer_matmul: bool = True
    conv1d_weight: torch.Tensor | None = None  # (out, in, kernel): conv1d instead of channels-last conv2d

    def __call__(self, x: torch.Tensor, margins: tuple[int, int] = (0, 0), padded: bool = False) -> torch.Tensor:
        single = self.weight.shape[1] == 1
        if (single and self.first_layer_matmul) or self.taps is not None:
            inner = FoldedConv(self.weight, self.bias, self.stride, self.padding, False, self.taps)
            y = inner(x, margins, padded)
        else:
            if self.conv1d_weight is not None and not single:
                channel_first = x.transpose(1, 2).contiguous()  # a no-op copy after a conv1d layer
                y = F.conv1d(channel_first, self.conv1d_weight, self.bias, self.stride, self.padding).transpose(1, 2)
            else:
                y = conv_channels_last(x, self.weight, self.bias, self.stride, self.padding)
            if margins != (0, 0):  # rows the caller zeroes: zeros here
                y = F.pad(y, (0, 0, *margins))
        if self.scale_shift is not None:
            y = torch.addcmul(self.scale_shift[1], y, self.scale_shift[0])
        if not self.relu:
            return y
        return torch.relu_(y) if self.relu_in_place else torch.relu(y)


@dataclass(frozen=True)
class AutocastGRU:
    """The module's own GRU run under autocast (weights cast at every time step), in ``HalfWeightGRU``'s place."""

    gru: nn.GRU
    dtype: torch.dtype

    def __call__(self, x: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(x.device.type, dtype=self.dtype):
            out, state = self.gru(x, state)
        return out.float(), state.float()


def variant_model(encoder: smooth_infomax.encoder.SmoothInfoMaxEncoder, setup: Setup,
                  dtype: torch.dtype) -> FoldedEncoder:
    """The encoder's folded modules for ``dtype`` with ``setup``'s tricks switched off (folded anew)."""
    device = next(encoder.parameters()).device
    modules = []
    for stage in encoder.stages:
        module = fold_module(stage, dtype, device)
        if setup.changes_convs:
            convs = tuple((_switched(conv, block, setup, dtype), layer)
                          for (conv, layer), block in zip(module.convs, stage.convs, strict=True))
            module = dataclasses.replace(module, convs=convs)
        if module.module_gru is not None and dtype != torch.float32:
            if not setup.gru_outside_autocast:
                module = dataclasses.replace(module, gru=AutocastGRU(module.module_gru, dtype))
            elif not setup.half_gru:
                module = dataclasses.replace(module, gru=None)
        modules.append(module)
    return FoldedEncoder(encoder.config, encoder.geometries, tuple(modules), dtype, device)


def _switched(conv: FoldedConv, block, setup: Setup, dtype: torch.dtype) -> SwitchedConv:
    weight, bias, scale_shift = conv.weight, conv.bias, None
    if not setup.bn_folded and block.norm is not None:
        norm = block.norm
        scale = norm.weight.detach().float() / torch.sqrt(norm.running_var.float() + norm.eps)
        shift = norm.bias.detach().float() - norm.running_mean.float() * scale
        weight = conv2d_weight(block.conv.weight.detach().float(), dtype, weight.device)
        bias = block.conv.bias.detach().to(dtype)
        scale_shift = (scale.to(dtype), shift.to(dtype))
    out_channels, in_channels, _, kernel = weight.shape
    blocks_fit = in_channels > 1 and kernel == 2 * conv.stride
    wanted = {"auto": conv.taps is not None, "on": blocks_fit, "off": False}[setup.winograd]
    taps = block_taps(weight[:, :, 0].float(), conv.stride).to(dtype) if wanted else None
    conv1d = None if setup.conv2d_channels_last else weight[:, :, 0].contiguous()
    return SwitchedConv(weight, bias, conv.stride, conv.padding, conv.relu, taps, scale_shift, setup.relu_in_place,
                        setup.first_layer_matmul, conv1d)


def mask_every_frame_(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``mask_tail_`` without its shortcut: every frame multiplied by its item's mask, padding or not."""
    keep = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
    return x.mul_(keep.unsqueeze(-1).to(x.dtype))


@contextlib.contextmanager
def patched(encoder, setup: Setup, model: FoldedEncoder | None = None):
    """While it is entered, ``encoder.extract`` (and ``sim-extract``) run with ``setup``'s tricks. ``model``: the
    setup's ``variant_model``, built beforehand (so that its folding is not timed); without it, or when
    ``setup.weights_cached`` is off, every ``extract`` call folds its modules anew."""
    with contextlib.ExitStack() as stack:
        if setup.changes_modules:
            cached = model if setup.weights_cached else None

            def folded_encoder() -> FoldedEncoder:
                wanted = compute_dtype(next(encoder.parameters()))
                return cached if cached is not None else variant_model(encoder, setup, wanted)

            stack.enter_context(mock.patch.object(encoder, "_folded_encoder", folded_encoder))
        if not setup.margins:
            stack.enter_context(mock.patch.object(folding, "writes_margins", lambda conv, padded: False))
        if not setup.masks_only_padding:
            for owner in (folding, folded_file, gru, stages):
                stack.enter_context(mock.patch.object(owner, "mask_tail_", mask_every_frame_))
        if not setup.mkldnn_check:
            stack.enter_context(mock.patch.object(smooth_infomax.encoder, "slow_dtype_reason", lambda *_: None))
        if not setup.evict:
            stack.enter_context(mock.patch.object(smooth_infomax.extraction.formats, "_evict", lambda *_: None))
        yield
