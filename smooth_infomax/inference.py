"""The inference path behind ``extract`` and ``sim-extract``: the same maths as the modules' ``forward``, faster.

What it changes (each measured in docs/performance.md):
- BatchNorm (eval mode) is folded into the conv weights and bias, and ReLU runs in place: one pass per layer.
- Each conv runs in the form measured fastest for its shape and machine (``convs.py``): the first layer, on a
  single input channel, as one matmul over a strided view of the waveform (oneDNN's conv1d is 2x slower on that
  shape in float32, 15x in bfloat16); on an AVX2 CPU in float32, convs whose kernel is twice their stride as
  Winograd F(2, 2) over blocks of the input, written straight into the next layer's padded input where it can.
- The log-variance head is skipped when no log-variance is wanted.
- Frames past an item's length are zeroed only when the batch has such frames.
- Weights are prepared once per dtype and device (e.g. bfloat16 under ``torch.autocast``) and reused until a
  parameter changes, instead of being cast on every call.
- When the convs run in 16 bits on an x86 CPU, the GRU runs with float16 weights packed for fbgemm (inputs, state
  and sums stay float32): 1.7x faster per time step than aten's float32 GRU, 2e-4 relative error, far below the
  error bfloat16 convs already bring. Float32 extraction keeps the exact float32 GRU.

Activations are channels-last ``(batch, frames, dim)``, the layout of the outputs; lengths stay on the CPU (no
device syncs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .convs import FoldedConv, block_conv_applies, block_taps, conv_channels_last, writes_margins
from .geometry import conv_output_length
from .layers import ConvBlock, EncoderModule


@dataclass(frozen=True)
class HalfWeightGRU:
    """A one-layer, batch-first GRU whose weights are float16 matrices packed for fbgemm's GEMM; inputs, state and
    sums stay float32, so the only error is the weights' rounding (about 2e-4 relative)."""

    cell_params: object  # torch.ScriptObject made by quantized::make_quantized_cell_params_fp16
    hidden_size: int

    @classmethod
    def of(cls, gru: torch.nn.GRU) -> HalfWeightGRU:
        pack = torch.ops.quantized.linear_prepack_fp16
        weights = [getattr(gru, f"{name}_l0").detach().float().cpu() for name in ("weight_ih", "bias_ih",
                                                                                   "weight_hh", "bias_hh")]
        params = torch.ops.quantized.make_quantized_cell_params_fp16(pack(*weights[:2]), pack(*weights[2:]))
        return cls(params, gru.hidden_size)

    def __call__(self, x: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``nn.GRU``: ``x (batch, frames, dim)`` float32 -> ``(batch, frames, hidden)``, state ``(1, batch,
        hidden)``."""
        if state is None:
            state = x.new_zeros(1, x.shape[0], self.hidden_size)
        return torch.quantized_gru(x, state, [self.cell_params], True, 1, 0.0, False, False, True)


def half_weight_gru_applies(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether inference in ``dtype`` on ``device`` runs its GRUs as ``HalfWeightGRU``: 16-bit compute on a CPU
    whose quantized engine is fbgemm's (x86)."""
    return (dtype in (torch.bfloat16, torch.float16) and device.type == "cpu"
            and torch.backends.quantized.engine in ("x86", "fbgemm"))


@dataclass(frozen=True)
class FoldedModule:
    """One ``EncoderModule`` ready for inference: folded convs and the 1x1 heads, each weight ``(dim, dim, 1, 1)``
    channels-last (``None`` when absent), and the GRU to run in place of the module's own (``None``: its own)."""

    convs: tuple[tuple[FoldedConv, object], ...]  # (conv, its ConvLayerConfig)
    mean_head: tuple[torch.Tensor, torch.Tensor] | None  # (weight, bias)
    logvar_head: tuple[torch.Tensor, torch.Tensor] | None
    gru: HalfWeightGRU | None = None

    def encode(
        self, x: torch.Tensor, lengths: torch.Tensor, want_logvar: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """As ``EncoderModule.encode``, channels-last: ``(batch, samples, in)`` -> mean ``(batch, frames, dim)``,
        logvar (same, or ``None``) and lengths (CPU)."""
        padded = False
        for index, (conv, layer) in enumerate(self.convs):
            following = self.convs[index + 1][0] if index + 1 < len(self.convs) else None
            lengths = conv_output_length(lengths, layer)
            if following is not None and following.taps is not None and writes_margins(conv, padded):
                # write the next conv's padded input directly: no copy of this layer's output into a padded one
                margins = following.block_margins(conv.output_frames(x.shape[1]))
                x = conv(x, margins)
                x[:, : margins[0]] = 0
                mask_tail_(x, lengths + margins[0])
                padded = True
            else:
                x = mask_tail_(conv(x, padded=padded), lengths)
                padded = False
        if self.mean_head is None:
            return x, None, lengths
        mean = mask_tail_(conv_channels_last(x, *self.mean_head), lengths)
        logvar = None
        if want_logvar and self.logvar_head is not None:
            logvar = mask_tail_(conv_channels_last(x, *self.logvar_head), lengths)
        return mean, logvar, lengths


def mask_tail_(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero, in place, frames at or past each item's length; ``x (batch, frames, dim)``, ``lengths`` on the CPU.
    Returns ``x``."""
    for item, length in enumerate(lengths.tolist()):
        if length < x.shape[1]:
            x[item, length:] = 0
    return x


def fold_conv(block: ConvBlock, dtype: torch.dtype, device: torch.device) -> FoldedConv:
    weight, bias = block.conv.weight.detach().float(), block.conv.bias.detach().float()
    if block.norm is not None:
        norm = block.norm
        scale = norm.weight.detach().float() / torch.sqrt(norm.running_var.float() + norm.eps)
        weight = weight * scale[:, None, None]
        bias = (bias - norm.running_mean.float()) * scale + norm.bias.detach().float()
    layer = block.layer
    as_blocks = block_conv_applies(weight, layer.stride, dtype, device)
    taps = block_taps(weight, layer.stride).to(device, dtype) if as_blocks else None
    return FoldedConv(_as_2d(weight, dtype, device), bias.to(device, dtype), layer.stride, layer.padding, layer.relu,
                      taps)


def _as_2d(weight: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A conv1d weight ``(out, in, kernel)`` as a channels-last conv2d weight ``(out, in, 1, kernel)``."""
    return weight.unsqueeze(2).to(device, dtype).contiguous(memory_format=torch.channels_last)


def fold_module(stage: EncoderModule, dtype: torch.dtype, device: torch.device) -> FoldedModule:
    """``stage`` (eval mode) folded for inference in ``dtype`` on ``device``."""
    convs = tuple((fold_conv(block, dtype, device), block.layer) for block in stage.convs)
    head = stage.head
    as_head = lambda conv: None if conv is None else (  # noqa: E731
        _as_2d(conv.weight.detach(), dtype, device), conv.bias.detach().to(device, dtype))
    gru = None
    if stage.gru is not None and half_weight_gru_applies(dtype, device):
        gru = HalfWeightGRU.of(stage.gru)
    if head is None:
        return FoldedModule(convs, None, None, gru)
    return FoldedModule(convs, as_head(head.mean), as_head(head.logvar), gru)


def run_gru(stage: EncoderModule, x: torch.Tensor, lengths: torch.Tensor, state: torch.Tensor | None = None,
            folded: FoldedModule | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The module's GRU over ``x (batch, frames, dim)``, autocast off (under autocast every time step would cast
    the weights again, 2.5x slower): ``folded.gru`` when the folded module has one, else the module's own GRU in
    its own dtype. Returns ``(batch, frames, hidden)`` (masked) and the last state ``(1, batch, hidden)``."""
    dtype = stage.gru.weight_hh_l0.dtype
    with torch.autocast(x.device.type, enabled=False):
        if folded is not None and folded.gru is not None:
            out, state = folded.gru(x.float(), None if state is None else state.float())
            out, state = out.to(dtype), state.to(dtype)
        else:
            out, state = stage.gru(x.to(dtype), state)
    return mask_tail_(out, lengths), state


class FoldedCache:
    """Folded modules per ``(dtype, device)``, rebuilt when any parameter or buffer of the encoder changes."""

    def __init__(self):
        self._entries: dict[tuple, tuple[tuple, list[FoldedModule | None]]] = {}

    def get(self, encoder, dtype: torch.dtype, device: torch.device) -> list[FoldedModule | None]:
        """One ``FoldedModule`` per module."""
        tensors = list(encoder.parameters()) + list(encoder.buffers())
        version = tuple((t.data_ptr(), t._version) for t in tensors)
        key = (dtype, str(device))
        cached = self._entries.get(key)
        if cached is None or cached[0] != version:
            folded = [fold_module(stage, dtype, device) for stage in encoder.stages]
            self._entries = {k: v for k, v in self._entries.items() if v[0] == version}
            self._entries[key] = (version, folded)
        return self._entries[key][1]


def default_sizes_s(device_type: str, dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """How much audio the conv modules compute at once on a device type in ``dtype``: ``(chunk_seconds,
    piece_seconds)``, the chunks of one long clip and the pieces of padded audio a large batch is split into
    (``pieces.py``).

    On a CPU, small pieces keep each layer's activations in the caches and under glibc's 32 MB mmap threshold
    (no fresh page faults per call): 16 bytes-seconds per element, so that the first layer's output (3,200 frames
    of 512 values per second) stays near 26 MB, 8 s chunks and 16 s pieces in bfloat16, 4 s and 8 s in float32;
    they extract 10-30 % faster than twice those sizes (docs/performance.md). A GPU wants large ones."""
    if device_type != "cpu":
        return 30.0, 60.0
    chunk_s = 16.0 / torch.empty((), dtype=dtype).element_size()
    return chunk_s, 2 * chunk_s


def compute_dtype(parameter: torch.Tensor) -> torch.dtype:
    """The dtype the convs run in: the autocast dtype when autocast is on for the parameter's device, else the
    parameter's own."""
    device_type = parameter.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return parameter.dtype


class SlowDtypeWarning(RuntimeWarning):
    """Computing in a 16-bit dtype that this CPU has no native support for: slower than float32."""


def slow_dtype_reason(dtype: torch.dtype, device: torch.device) -> str | None:
    """Why computing in ``dtype`` on ``device`` would run slower than float32, or ``None``.

    bfloat16 and float16 are fast on a CPU only where oneDNN finds native support (AVX-512 BF16 / AMX for
    bfloat16, AVX-512 FP16 / AMX-FP16 for float16). Elsewhere PyTorch falls back to generic loops: bfloat16
    extraction ran 3.5x slower than float32 on an AVX2 AMD EPYC (docs/performance.md)."""
    if device.type != "cpu" or dtype not in (torch.bfloat16, torch.float16):
        return None
    check = {torch.bfloat16: "_is_mkldnn_bf16_supported", torch.float16: "_is_mkldnn_fp16_supported"}[dtype]
    if torch.backends.mkldnn.is_available() and getattr(torch.ops.mkldnn, check)():
        return None
    return (f"this CPU has no native {str(dtype).removeprefix('torch.')} support (oneDNN finds no AVX-512 BF16/FP16 "
            "or AMX): computing in it runs several times slower than float32 here")

