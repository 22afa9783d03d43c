"""The conv layers of the inference path, channels-last ``(batch, frames, dim)``:

- on a CPU, a conv whose kernel is twice its stride (every conv of the presets, the first layer included): a
  kernel-2 conv over blocks of ``stride`` input frames (a reshaped view), computed with Winograd's F(2, 2), three
  matmuls for every two output frames instead of four (``block_taps``);
- any other conv (and every conv on a GPU): ``F.conv1d``.

Each conv pads its own input (a block conv with ``F.pad``, ``F.conv1d`` itself).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class FoldedConv:
    """A conv layer with its BatchNorm folded in: ``weight (out, in, kernel)``, ``bias (out,)``, and ``taps``, the
    same conv over blocks of the input (``block_taps``), or ``None`` to run ``F.conv1d``."""

    weight: torch.Tensor
    bias: torch.Tensor
    stride: int
    padding: int
    relu: bool
    taps: torch.Tensor | None = None  # (3, stride * in, out)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, samples, in)`` -> ``(batch, frames, out)``, before masking."""
        if self.taps is not None:
            x = self._block_conv(x, self.taps)
        else:
            x = conv1d_channels_last(x, self.weight, self.bias, self.stride, self.padding)
        return torch.relu_(x) if self.relu else x

    def output_frames(self, input_frames: int) -> int:
        return (input_frames + 2 * self.padding - self.weight.shape[-1]) // self.stride + 1

    def _block_conv(self, x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
        """Kernel = 2 x stride: the padded input read as blocks of ``stride`` frames ``(batch, frames + 1, stride *
        in)`` (a view); output frame t is ``A0 b[t] + A1 b[t + 1]``, the kernel's two halves applied to blocks t and
        t + 1."""
        # ``padding`` zero rows before the input; after it, as many as the last block needs (negative: the input's
        # last rows, which no output frame reads, are cropped)
        right = (self.output_frames(x.shape[1]) + 1) * self.stride - x.shape[1] - self.padding
        x = F.pad(x, (0, 0, self.padding, right))
        blocks = x.reshape(x.shape[0], x.shape[1] // self.stride, -1)  # a view: no copy of the input
        out = blocks.new_empty(blocks.shape[0], blocks.shape[1] - 1, self.bias.shape[0])
        for item in range(blocks.shape[0]):
            winograd_f22(blocks[item], taps, self.bias, out[item])
        return out


def winograd_f22(blocks: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor, out: torch.Tensor) -> None:
    """Kernel-2 conv ``out[t] = A0 b[t] + A1 b[t + 1] + bias`` by Winograd's F(2, 2): per pair of outputs,
    ``m1 = A0 (b0 - b1)``, ``m2 = (A0 + A1) b1``, ``m3 = A1 (b2 - b1)``, then ``y0 = m1 + m2``, ``y1 = m2 + m3``:
    three matmuls instead of four.

    Args:
        blocks: ``(frames + 1, block_dim)``.
        taps: ``(3, block_dim, out)``: ``A0^T``, ``(A0 + A1)^T``, ``A1^T`` (``block_taps``).
        bias: ``(out,)``.
        out: ``(frames, out)``, written in place.
    """
    # why: a matmul over blocks runs at the matmul rate, above oneDNN's conv on these shapes (AVX2 and AVX-512 CPUs,
    # float32 and bfloat16; docs/performance.md), and Winograd's F(2, 2) needs a quarter fewer multiplications than
    # the plain matmul over blocks, for two subtractions over the input
    pairs = out.shape[0] // 2
    first, middle, after = blocks[0: 2 * pairs: 2], blocks[1: 2 * pairs: 2], blocks[2: 2 * pairs + 1: 2]
    rows = out[: 2 * pairs].view(pairs, 2, out.shape[1])
    shared = torch.addmm(bias, middle, taps[1])
    rows[:, 0] = torch.addmm(shared, first - middle, taps[0])
    rows[:, 1] = shared.addmm_(after - middle, taps[2])
    if out.shape[0] % 2:
        out[-1] = torch.addmm(bias, blocks[-2:-1], taps[0]).addmm_(blocks[-1:], taps[2])[0]


def conv1d_channels_last(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1,
                         padding: int = 0) -> torch.Tensor:
    """``F.conv1d`` of ``x (batch, frames, in)`` with ``weight (out, in, kernel)``; returns ``(batch, frames',
    out)``, contiguous: the layout of the outputs and of the next layer's input."""
    return F.conv1d(x.transpose(1, 2), weight, bias, stride, padding).transpose(1, 2).contiguous()


def block_conv_applies(weight: torch.Tensor, stride: int, device: torch.device) -> bool:
    """Whether a conv of ``weight (out, in, kernel)`` runs as a Winograd conv over blocks (``winograd_f22``): a
    kernel of twice the stride, on a CPU (on a GPU, ``F.conv1d`` runs cuDNN's convolutions)."""
    return device.type == "cpu" and weight.shape[2] == 2 * stride


def block_taps(weight: torch.Tensor, stride: int) -> torch.Tensor:
    """``weight (out, in, 2 * stride)`` as the taps of ``winograd_f22`` over blocks of ``stride`` input frames,
    ``(3, stride * in, out)``: ``A0^T``, ``(A0 + A1)^T``, ``A1^T``, where ``A_h[o, s * in + c]`` is
    ``weight[o, c, h * stride + s]``."""
    out_channels, in_channels, _ = weight.shape
    halves = weight.reshape(out_channels, in_channels, 2, stride).permute(2, 3, 1, 0)  # (2, stride, in, out)
    first, second = halves.reshape(2, stride * in_channels, out_channels)
    return torch.stack([first, first + second, second]).contiguous()


def mask_tail_(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero, in place, frames at or past each item's length; ``x (batch, frames, dim)``, ``lengths (batch,)`` on any
    device. Returns ``x``."""
    # why non_blocking: lengths stay on the CPU, and a blocking copy to a GPU would wait for all its queued work
    keep = torch.arange(x.shape[1], device=x.device) < lengths.to(x.device, non_blocking=True)[:, None]
    return x.mul_(keep.unsqueeze(-1))

