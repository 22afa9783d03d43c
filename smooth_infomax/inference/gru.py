"""The GRU of the inference path: run outside autocast, with float16 weights packed for fbgemm on 16-bit x86 runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from .convs import mask_tail_


@dataclass(frozen=True)
class HalfWeightGRU:
    """A one-layer, batch-first GRU whose weights are float16 matrices packed for fbgemm's GEMM; inputs, state and
    sums stay float32, so the only error is the weights' rounding (docs/performance.md)."""

    # why: the GRU is a sequential loop of matrix-vector products bound by reading the weights; float16 weights halve
    # what each time step reads, and fbgemm's packed float16 GEMM is the only such kernel torch has on a CPU
    cell_params: object  # torch.ScriptObject made by quantized::make_quantized_cell_params_fp16
    hidden_size: int

    @classmethod
    def of(cls, gru: nn.GRU) -> HalfWeightGRU:
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
    whose quantized engine is fbgemm's (x86). Float32 inference keeps the exact float32 GRU."""
    return (dtype in (torch.bfloat16, torch.float16) and device.type == "cpu"
            and torch.backends.quantized.engine in ("x86", "fbgemm"))


def run_gru(gru: nn.GRU, x: torch.Tensor, lengths: torch.Tensor, state: torch.Tensor | None = None,
            half: HalfWeightGRU | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A module's GRU over ``x (batch, frames, dim)``, autocast off: ``half`` when given, else ``gru`` in its own
    dtype. Returns ``(batch, frames, hidden)`` (masked past ``lengths``, on the CPU) and the last state ``(1, batch,
    hidden)``."""
    dtype = cast(torch.Tensor, gru.weight_hh_l0).dtype  # torch types a module's attributes as Tensor | Module
    # why autocast off: under autocast every time step would cast the weights again
    with torch.autocast(x.device.type, enabled=False):
        if half is not None:
            out, state = half(x.float(), None if state is None else state.float())
            out, state = out.to(dtype), state.to(dtype)
        else:
            out, state = gru(x.to(dtype), state)
    return mask_tail_(out, lengths), state
