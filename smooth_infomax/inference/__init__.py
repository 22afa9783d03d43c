"""Planning and running the encoder at inference: the same maths as the modules' ``forward``, faster.

Files, each with one job:
- ``stages.py``: ``run_stages``, the one stage loop (convs -> head -> GRU -> collect) every path runs through.
- ``unfolded.py``: the modules' own passes through it (training ``forward``, ``forward_features``).
- ``folding.py``: modules prepared for inference (BatchNorm folded, weights cast once per dtype and device).
- ``convs.py`` / ``gru.py``: each conv and the GRU in the form measured fastest for its shape and machine.
- ``folded.py``: the folded fast path through ``run_stages``.
- ``chunks.py`` / ``pieces.py``: one long clip in exact chunks; a large batch in cache-sized pieces.
- ``plan.py``: which of those ``extract`` takes; ``machine.py``: compute dtype, slow-dtype warning, default sizes.

What the folded path changes, and why (the measurements: docs/performance.md):
- BatchNorm (eval mode) is folded into the conv weights and bias, and ReLU runs in place: one pass per layer.
- The first layer, on a single input channel, is one matmul over a strided view of the waveform (oneDNN's conv is
  slow on that shape); on an AVX2 CPU in float32, convs whose kernel is twice their stride run as Winograd F(2, 2)
  over blocks of the input, written straight into the next layer's padded input where they can.
- The log-variance head is skipped when no log-variance is wanted.
- Frames past an item's length are zeroed only when the batch has such frames.
- Weights are prepared once per dtype and device (e.g. bfloat16 under ``torch.autocast``) and reused until a
  parameter changes, instead of being cast on every call.
- When the convs run in 16 bits on an x86 CPU, the GRU runs with float16 weights packed for fbgemm (inputs, state
  and sums stay float32); float32 extraction keeps the exact float32 GRU. The GRU always runs outside autocast.
- A long clip runs in chunks and a large batch in pieces sized to stay in the caches (``machine.default_sizes_s``).

Activations are channels-last ``(batch, frames, dim)``, the layout of the outputs; lengths stay on the CPU (no
device syncs). Nothing here imports ``smooth_infomax.extraction`` (the CLI's pipeline) or the encoder class.
"""

from .chunks import ChunkWindow, iter_chunks, plan_chunks, supports_chunking
from .folding import FoldedCache, FoldedEncoder, FoldedModule
from .gru import HalfWeightGRU, half_weight_gru_applies, run_gru
from .machine import Sizes, SlowDtypeWarning, compute_dtype, default_sizes_s, extract_chunk_samples, slow_dtype_reason
from .pieces import piece_groups
from .stages import Request, run_stages

__all__ = [
    "ChunkWindow",
    "FoldedCache",
    "FoldedEncoder",
    "FoldedModule",
    "HalfWeightGRU",
    "Request",
    "Sizes",
    "SlowDtypeWarning",
    "compute_dtype",
    "default_sizes_s",
    "extract_chunk_samples",
    "half_weight_gru_applies",
    "iter_chunks",
    "piece_groups",
    "plan_chunks",
    "run_gru",
    "run_stages",
    "slow_dtype_reason",
    "supports_chunking",
]
