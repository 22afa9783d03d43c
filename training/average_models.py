"""Average the weights of encoders that share an architecture and a starting point.

Runs continued from one model (``--set init_from=...``) stay in that model's basin, so the mean of their weights is
often a better model than any one of them (a "model soup", Wortsman et al., ICML 2022; the same arithmetic as
fairseq's ``average_checkpoints.py`` over one run's last checkpoints). Floating-point tensors, batch-norm running
statistics included, are averaged in float64 and stored in the first model's dtype; integer buffers
(``num_batches_tracked``) are taken from the first model. Models of different architectures are refused.

    python -m training.average_models runs/soup sim-mix runs/cont_r50 runs/cont_r75 --dtype float16
    python -m training.evaluate --data data/real_eval --model soup=runs/soup ...

Each model is anything ``training.evaluate --model`` takes: a run folder (its latest checkpoint), a checkpoint
file, a ``save_pretrained`` folder or a shipped name. The output is a ``save_pretrained`` folder whose card names
every ingredient.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.card import ModelCard
from training.evaluate_models import load_encoder


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float] | None = None,
                        ) -> dict[str, torch.Tensor]:
    """The weighted mean of ``states`` (equal weights by default; weights are normalised to sum to 1).

    Every state must have the same keys and shapes; integer tensors are copied from the first state.
    """
    if not states:
        raise ValueError("nothing to average: no models given")
    weights = [1.0] * len(states) if weights is None else list(weights)
    if len(weights) != len(states) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"need one non-negative weight per model ({len(states)}), not summing to 0; got {weights}")
    first = states[0]
    for index, state in enumerate(states[1:], start=1):
        if state.keys() != first.keys():
            raise ValueError(f"model {index} has different parameters from model 0: "
                             f"{sorted(state.keys() ^ first.keys())[:5]}")
        mismatched = [k for k in first if state[k].shape != first[k].shape]
        if mismatched:
            raise ValueError(f"model {index} differs in shape from model 0 at {mismatched[:5]}")
    total = sum(weights)
    averaged = {}
    for key, tensor in first.items():
        if not tensor.is_floating_point():
            averaged[key] = tensor.clone()
            continue
        mean = sum(state[key].double() * (weight / total) for state, weight in zip(states, weights, strict=True))
        averaged[key] = mean.to(tensor.dtype)
    return averaged


def average_encoders(encoders: Sequence[SmoothInfoMaxEncoder], weights: Sequence[float] | None = None,
                     ) -> SmoothInfoMaxEncoder:
    """A new encoder (eval mode) whose weights are the weighted mean of ``encoders``' (see module docstring)."""
    if not encoders:
        raise ValueError("nothing to average: no models given")
    config = encoders[0].config
    for index, encoder in enumerate(encoders[1:], start=1):
        if encoder.config.to_json() != config.to_json():
            raise ValueError(f"model {index} has a different architecture from model 0; only models of one "
                             "architecture can be averaged")
    averaged = SmoothInfoMaxEncoder(config).to(next(encoders[0].parameters()).dtype)
    averaged.load_state_dict(average_state_dicts([e.state_dict() for e in encoders], weights), strict=True)
    return averaged.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="the save_pretrained folder to write (refused if it holds a model)")
    parser.add_argument("models", nargs="+", help="run folder, checkpoint file, model folder or shipped name")
    parser.add_argument("--weights", type=float, nargs="+", help="one weight per model (default: equal)")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32", help="stored weight dtype")
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    if (out_dir / "model.safetensors").exists():
        parser.error(f"{out_dir} already holds a model; choose another folder or remove it")
    loaded = [load_encoder(spec) for spec in args.models]
    try:
        averaged = average_encoders([encoder for encoder, _ in loaded], args.weights)
    except ValueError as error:
        parser.error(str(error))
    weights = args.weights or [1.0] * len(loaded)
    sources = "; ".join(f"{w:g} x {where}" for w, (_, where) in zip(weights, loaded, strict=True))
    card = ModelCard(title="Smooth InfoMax speech encoder (weight average)",
                     training_data="as each averaged model's card says",
                     training=f"the weighted mean of {len(loaded)} models' weights: {sources}",
                     notes="Made by training.average_models; evaluate it before use.")
    averaged.save_pretrained(out_dir, card, weights_dtype=getattr(torch, args.dtype))
    print(f"wrote {out_dir}: the mean of {len(loaded)} models ({sources})")


if __name__ == "__main__":
    main()
