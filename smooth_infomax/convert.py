"""Convert a checkpoint written by the authors' reference code to a ``save_pretrained`` folder.

Reads ``model_<epoch>.ckpt`` files of fdenoodt/Smooth-InfoMax (SIM, its GIM baseline and CPC) and of
loeweX/Greedy_InfoMax with ``torch.load(weights_only=True)``, so no code in the file is executed. The state-dict
layouts understood (reference spec, section 6), after the ``module.`` prefix of ``nn.DataParallel`` is stripped:

- ``fullmodel.{m}.encoder.encoder.{j}.0.*`` conv ``j`` of module ``m``, ``….{j}.1.*`` its BatchNorm;
- ``fullmodel.{m}.encoder.encoder.{j}.{weight,bias}`` a bare conv (CPC "extra layers");
- ``fullmodel.{m}.encoder.encoder.layer {j}.0.*`` (older SIM) and ``fullmodel.{m}.encoder.model.layer {j}.0.*`` (GIM);
- ``fullmodel.{m}.encoder.encoder_mu.*`` / ``encoder_var.*`` the 1x1 heads;
- ``fullmodel.{m}.autoregressor.gru.*`` the GRU; ``fullmodel.{m}.loss.predictor.weight`` the InfoNCE predictor.

Whether a checkpoint is SIM or the GIM baseline cannot be read from the weights (both carry ``encoder_var``), so
the preset is an argument. BatchNorm and the number of prediction steps K are detected. Predictor weights and
the unused ``encoder_var`` of the GIM baseline are not part of the encoder and are reported as dropped.

Usage: ``python -m smooth_infomax.convert model_99.ckpt OUT_DIR --preset sim``
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import EncoderConfig, preset

_CONV = re.compile(
    r"^fullmodel\.(\d+)\.encoder\.(?:encoder|model)\.(?:layer )?(\d+)\.(?:(\d)\.)?"
    r"(weight|bias|running_mean|running_var|num_batches_tracked)$"
)
_HEAD = re.compile(r"^fullmodel\.(\d+)\.encoder\.encoder_(mu|var)\.(weight|bias)$")
_GRU = re.compile(r"^fullmodel\.(\d+)\.autoregressor\.gru\.(\w+)$")
_PREDICTOR = re.compile(r"^fullmodel\.(\d+)\.loss\.predictor\.weight$")
_UNKNOWN = "not part of any known layout"


@dataclass(frozen=True)
class Conversion:
    """A converted checkpoint: the config, our state dict, and the reference keys left out (with why)."""

    config: EncoderConfig
    state_dict: dict[str, torch.Tensor]
    dropped: dict[str, str]


def convert_state_dict(reference: dict[str, torch.Tensor], preset_name: str) -> Conversion:
    """Map a reference state dict to this package's keys for the encoder of preset ``preset_name``."""
    reference = {k.removeprefix("module."): v for k, v in reference.items()}
    state, dropped, predictor_rows = {}, {}, {}
    for key, tensor in reference.items():
        mapped, why = _map_key(key, preset_name)
        if mapped is not None:
            state[mapped] = tensor
        else:
            dropped[key] = why
        if (m := _PREDICTOR.match(key)) is not None:
            predictor_rows[int(m.group(1))] = tensor.shape[0]
    config = _detect_config(preset_name, state, predictor_rows)
    return Conversion(config, state, dropped)


def _map_key(key: str, preset_name: str) -> tuple[str | None, str]:
    if m := _CONV.match(key):
        module, layer, part, name = m.groups()
        block = "norm" if part == "1" else "conv"
        return f"stages.{module}.convs.{layer}.{block}.{name}", ""
    if m := _HEAD.match(key):
        module, which, name = m.groups()
        if which == "var" and preset_name != "sim":
            return None, "log-variance head of a deterministic model (never trained)"
        return f"stages.{module}.head.{'mean' if which == 'mu' else 'logvar'}.{name}", ""
    if m := _GRU.match(key):
        return f"stages.{m.group(1)}.gru.{m.group(2)}", ""
    if _PREDICTOR.match(key):
        return None, "InfoNCE predictor (training only)"
    return None, _UNKNOWN


def _detect_config(preset_name: str, state: dict[str, torch.Tensor], predictor_rows: dict[int, int]) -> EncoderConfig:
    config = preset(preset_name)
    has_norm = any(".norm." in key for key in state)
    modules = tuple(dataclasses.replace(m, batch_norm=has_norm and bool(m.conv_layers)) for m in config.modules)
    loss = config.loss
    if predictor_rows:
        target_dim = config.modules[0].conv_layers[-1].channels  # predictors map to K blocks of the conv width
        steps = {rows // target_dim for rows in predictor_rows.values()}
        if len(steps) != 1:
            raise ValueError(f"predictors disagree on the number of prediction steps: {sorted(steps)}")
        loss = dataclasses.replace(loss, prediction_steps=steps.pop())
    return dataclasses.replace(config, modules=modules, loss=loss)


def convert_checkpoint(checkpoint: str | Path, out_dir: str | Path, preset_name: str):
    """Read a reference checkpoint (``weights_only=True``), check it loads strictly, and ``save_pretrained`` it."""
    from .card import ModelCard
    from .encoder import SmoothInfoMaxEncoder
    from .hub import LoadError, load_state_dict_strict

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise LoadError(f"{checkpoint}: no such file")
    try:
        reference = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" not in str(err):  # torch names the class or function the file would have imported
            raise LoadError(f"{checkpoint}: not a PyTorch tensor checkpoint (unreadable pickle stream)") from None
        raise LoadError(f"{checkpoint}: holds objects other than tensors and plain containers; such files are never "
                        "unpickled here, because unpickling can execute arbitrary code") from None
    except Exception as err:  # noqa: BLE001 -- torch raises several types for non-checkpoints
        raise LoadError(f"{checkpoint}: not a PyTorch tensor checkpoint ({type(err).__name__})") from None
    if not isinstance(reference, dict):
        raise LoadError(f"{checkpoint}: expected a state dict, found {type(reference).__name__}")
    conversion = convert_state_dict(reference, preset_name)
    unknown = [key for key, why in conversion.dropped.items() if why == _UNKNOWN]
    if unknown:
        raise LoadError(f"{checkpoint}: keys in no known reference layout: {unknown[:5]}")
    model = SmoothInfoMaxEncoder(conversion.config)
    load_state_dict_strict(model, conversion.state_dict, f"{checkpoint} (as preset {preset_name!r})")
    card = ModelCard(training="converted from a reference checkpoint", notes=f"Converted from `{checkpoint.name}`.")
    model.save_pretrained(out_dir, card)
    return model, conversion


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m smooth_infomax.convert", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="reference model_<epoch>.ckpt")
    parser.add_argument("out_dir", help="folder to write config.json, model.safetensors and README.md to")
    parser.add_argument("--preset", required=True, choices=["sim", "gim_sim_repo", "gim", "cpc"])
    args = parser.parse_args(argv)
    from .hub import load_errors_as

    with load_errors_as(_exit_with_error):  # the reasons name the checkpoint
        _, conversion = convert_checkpoint(args.checkpoint, args.out_dir, args.preset)
    print(f"wrote {args.out_dir} ({len(conversion.state_dict)} tensors)")
    for key, why in sorted(conversion.dropped.items()):
        print(f"dropped {key}: {why}")


def _exit_with_error(message: str) -> SystemExit:
    """Exit status 1 with ``error: <message>`` on stderr."""
    print(f"error: {message}", file=sys.stderr)
    return SystemExit(1)


if __name__ == "__main__":
    main()
