"""The GRU of the inference path: the module's own GRU in its own dtype, run outside autocast."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .convs import mask_tail_


def run_gru(gru: nn.GRU, x: torch.Tensor, lengths: torch.Tensor,
            state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A module's GRU over ``x (batch, frames, dim)`` in the GRU's own dtype, autocast off. Returns ``(batch, frames,
    hidden)`` (masked past ``lengths``) and the last state ``(1, batch, hidden)``."""
    dtype = cast(torch.Tensor, gru.weight_hh_l0).dtype  # torch types a module's attributes as Tensor | Module
    # why autocast off: under autocast every time step would cast the weights again
    with torch.autocast(x.device.type, enabled=False):
        out, state = gru(x.to(dtype), state)
    return mask_tail_(out, lengths), state
