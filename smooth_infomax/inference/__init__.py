"""Planning and running the encoder at inference: the same maths as the modules' ``forward``, faster.

Files, each with one job:
- ``stages.py``: ``run_stages``, the one stage loop (convs -> head -> GRU -> collect) every path runs through.
- ``unfolded.py``: the modules' own passes through it (training ``forward``, ``forward_features``).
- ``folding.py``: modules prepared for inference (BatchNorm folded, weights cast to the compute dtype).
- ``convs.py`` / ``gru.py``: each conv in its form for the device (Winograd on a CPU), the GRU outside autocast.
- ``folded.py``: the folded fast path through ``run_stages``.
- ``chunks.py`` / ``pieces.py``: one long clip in exact chunks; a large batch in cache-sized pieces.
- ``plan.py``: which of those ``extract`` takes; ``machine.py``: compute dtype, slow-dtype warning, default sizes.

What the folded path changes, and why (each kept for a measured gain of at least 5 % on an utterance corpus, or
for the reason given; the measurements: docs/performance.md):
- BatchNorm (eval mode) is folded into the conv weights and bias (for accuracy in 16 bits); ReLU runs in place
  (no code cost).
- On a CPU, convs whose kernel is twice their stride (all of the presets', the first layer's too) run as Winograd
  F(2, 2) over blocks of the input, in any dtype, each padding its own input; other convs, and every conv on a
  GPU, run as ``F.conv1d``.
- The log-variance head is skipped when no log-variance is wanted.
- The GRU runs outside autocast, in its own dtype.
- Weights are folded and cast at every call, so they follow any change of the parameters.
- A long clip runs in chunks and a large batch in pieces sized to stay in the caches (``machine.default_sizes_s``).

Activations are channels-last ``(batch, frames, dim)``, the layout of the outputs; lengths stay on the CPU (no
device syncs). Nothing here imports ``smooth_infomax.extraction`` (the CLI's pipeline) or the encoder class.
"""

from .chunks import ChunkWindow, iter_chunks, plan_chunks, supports_chunking
from .folding import FoldedEncoder, FoldedModule
from .gru import run_gru
from .machine import Sizes, SlowDtypeWarning, compute_dtype, default_sizes_s, extract_chunk_samples, slow_dtype_reason
from .pieces import piece_groups
from .stages import Request, run_stages

__all__ = [
    "ChunkWindow",
    "FoldedEncoder",
    "FoldedModule",
    "Request",
    "Sizes",
    "SlowDtypeWarning",
    "compute_dtype",
    "default_sizes_s",
    "extract_chunk_samples",
    "iter_chunks",
    "piece_groups",
    "plan_chunks",
    "run_gru",
    "run_stages",
    "slow_dtype_reason",
    "supports_chunking",
]
