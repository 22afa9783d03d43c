"""What the device and dtype decide: the dtype the convs run in, whether that dtype is slow on this CPU, and how much
audio the conv modules compute at once (chunk and piece sizes)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
    bfloat16, AVX-512 FP16 / AMX-FP16 for float16); elsewhere PyTorch falls back to generic loops, several times
    slower than float32 (docs/performance.md, "An AVX2 CPU")."""
    if device.type != "cpu" or dtype not in (torch.bfloat16, torch.float16):
        return None
    # why the private checks: torch has no public query for oneDNN's native 16-bit support, and the ISA name alone
    # does not tell (AVX-512 without BF16 exists)
    check = {torch.bfloat16: "_is_mkldnn_bf16_supported", torch.float16: "_is_mkldnn_fp16_supported"}[dtype]
    if torch.backends.mkldnn.is_available() and getattr(torch.ops.mkldnn, check)():
        return None
    return (f"this CPU has no native {str(dtype).removeprefix('torch.')} support (oneDNN finds no AVX-512 BF16/FP16 "
            "or AMX): computing in it runs several times slower than float32 here")


def default_sizes_s(device_type: str, dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """How much audio the conv modules compute at once on a device type in ``dtype``: ``(chunk_seconds,
    piece_seconds)``, the chunks of one long clip and the pieces of padded audio a large batch is split into.

    On a CPU: 16 / element-size seconds per chunk and twice that per piece (4 s and 8 s in float32, 8 s and 16 s in
    16 bits). Why: the first layer's output (3,200 frames of 512 values per second) then stays near 26 MB, in the
    caches and under glibc's 32 MB mmap threshold, so no call faults in fresh pages (docs/performance.md). A GPU
    wants large ones: 30 s and 60 s."""
    if device_type != "cpu":
        return 30.0, 60.0
    chunk_s = 16.0 / torch.empty((), dtype=dtype).element_size()
    return chunk_s, 2 * chunk_s


def extract_chunk_samples(device_type: str, dtype: torch.dtype = torch.float32, sample_rate: int = 16000) -> int:
    """``extract`` computes a single clip longer than this in chunks of this size (input samples)."""
    return int(default_sizes_s(device_type, dtype)[0] * sample_rate)


@dataclass(frozen=True)
class Sizes:
    """How much audio the conv modules compute at once, in input samples (at the model's rate, 16 kHz).

    Attributes:
        chunk_samples: a single clip longer than this is computed in exact chunks of this much output.
        piece_samples: a batch with more padded audio than this runs its conv modules in groups of items of at
            most this much padded audio.
    """

    chunk_samples: int
    piece_samples: int

    @classmethod
    def resolve(cls, device_type: str, dtype: torch.dtype, sample_rate: int, chunk_samples: int | None = None,
                piece_samples: int | None = None) -> Sizes:
        """The given sizes, each ``None`` replaced by ``default_sizes_s`` for the device type and dtype."""
        chunk_s, piece_s = default_sizes_s(device_type, dtype)
        chunk = int(chunk_s * sample_rate) if chunk_samples is None else _positive(chunk_samples, "chunk_samples")
        piece = int(piece_s * sample_rate) if piece_samples is None else _positive(piece_samples, "piece_samples")
        return cls(chunk, piece)


def _positive(samples: object, name: str) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"{name} must be a positive number of input samples (an int), got {samples!r}")
    return samples
