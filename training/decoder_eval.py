"""Held-out error of a model's decoders, in log-mel, against a per-clip-mean baseline.

    OMP_NUM_THREADS=1 python -m training.decoder_eval --model sim-mix --data data/real --out results/decoders.json
    OMP_NUM_THREADS=1 python -m training.decoder_eval ... --compare-float32 runs/decoders-sim-mix   # float16 check

For each utterance of the corpus's ``test_split`` (held out from ``training.train_decoders``), the encoder's posterior
means of each decoded module are decoded, and the decoded log-mel frames are compared with the utterance's own:

* log-mel decoder: its output; waveform decoder: the log-mel of its audio (same front end as the module's log-mel
  decoder, or ``LogMelSettings()`` when the module has none);
* error: mean absolute difference over every frame and band (natural-log units);
* baseline: the same error of the utterance's own mean log-mel spectrum repeated on every frame (a per-clip constant);
* ratio = error / baseline. The bar the shipped decoders meet: the module-2 log-mel decoder's ratio at most 0.6.

``--compare-float32 RUN_DIR_OR_CHECKPOINT`` also evaluates each decoder with the float32 weights it was trained to,
from the ``training.train_decoders`` checkpoint of the step it was exported at (a file, or the run folder), on the
same utterances, and reports the relative difference of the log-mel errors, (float16 - float32) / float32. The
checkpoint must hold exactly these decoders: the same encoder pin and step, and weights that round to the loaded ones.
The bar for shipping float16 weights: within 1 % of float32's error.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from smooth_infomax.analysis.logmel import LogMelDecoder, LogMelSettings, log_mel
from smooth_infomax.analysis.model_decoders import AnyDecoder, encoder_pin, find_decoders, kind_of, load_decoder
from smooth_infomax.audio import HOP_SAMPLES
from smooth_infomax.hub import load_for_cli
from training.checkpoint import checkpoint_path, load_checkpoint
from training.data.audio_io import read_audio
from training.data.librispeech import CorpusPaths, read_split, utterance_path

log = logging.getLogger("decoder_eval")
ACCEPTANCE_RATIO = 0.6
FLOAT16_TOLERANCE = 0.01
"""Largest relative difference of a float16 decoder's error from its float32 weights' error we ship."""
FLOAT32_SUFFIX = " float32"


def model_decoders(model: str, encoder, folder: Path | None = None) -> dict[str, AnyDecoder]:
    """``{"module-<m>/<kind>": decoder}``: those of ``folder`` (holding ``module-<m>/<kind>/``) or the model's own,
    each checked against the encoder's pin."""
    pin = encoder_pin(encoder)
    if folder is not None:
        subs = sorted(p.parent.relative_to(folder).as_posix() for p in folder.glob("module-*/*/config.json"))
        return {sub: load_decoder(folder, sub, encoder_sha256=pin) for sub in subs}
    found, commit = find_decoders(model, encoder.revision)
    return {f"module-{f.module}/{f.kind}": load_decoder(model, f.subfolder, commit, pin) for f in found}


def _settings(decoders: dict[str, AnyDecoder], module: int) -> LogMelSettings:
    for d in decoders.values():
        if isinstance(d, LogMelDecoder) and d.module == module:
            return d.config.settings
    return LogMelSettings()


def evaluate(encoder, decoders: dict[str, AnyDecoder], audio: Sequence[np.ndarray]) -> dict[str, dict]:
    """Log-mel error, baseline and ratio of each decoder over ``audio`` (float32 16 kHz utterances)."""
    sums = {name: np.zeros(3) for name in decoders}  # error sum, baseline sum, values
    modules = sorted({d.module for d in decoders.values()})
    with torch.no_grad():
        for wave in audio:
            wave = torch.from_numpy(np.asarray(wave, dtype=np.float32)[: len(wave) // HOP_SAMPLES * HOP_SAMPLES])
            features = encoder.extract(wave[None], sample_rate=encoder.sample_rate, modules=modules)
            for name, decoder in decoders.items():
                mean = features[decoder.module].mean.float()
                settings = _settings(decoders, decoder.module)
                target = log_mel(wave[None], settings, frames=mean.shape[1])
                if isinstance(decoder, LogMelDecoder):
                    predicted = decoder(mean)
                else:
                    predicted = log_mel(decoder(mean, num_samples=wave.shape[-1]), settings, frames=mean.shape[1])
                baseline = target.mean(1, keepdim=True).expand_as(target)
                sums[name] += [float((predicted - target).abs().sum()), float((baseline - target).abs().sum()),
                               target.numel()]
    results = {}
    for name, (error, base, count) in sums.items():
        results[name] = {"kind": kind_of(decoders[name]), "module": decoders[name].module,
                         "logmel_mae": error / count, "baseline_mae": base / count, "ratio": error / base,
                         "utterances": len(audio),
                         "steps_done": decoders[name].config.training.get("steps_done")}
    return results


def float32_twins(decoders: dict[str, AnyDecoder], checkpoint: str | Path, encoder_sha256: str
                  ) -> dict[str, AnyDecoder]:
    """``{"<name> float32": decoder}``: a copy of each decoder with the float32 weights of the
    ``training.train_decoders`` checkpoint it was exported from (``checkpoint``: the file, or the run folder, whose
    checkpoint at the decoders' ``steps_done`` is used). Raises ``SystemExit`` unless the checkpoint has the same
    encoder pin and step and weights that equal the loaded ones after rounding to float16 (or exactly)."""
    path = Path(checkpoint)
    if path.is_dir():
        steps = {d.config.training.get("steps_done") for d in decoders.values()}
        if len(steps) != 1 or not isinstance(next(iter(steps)), int):
            raise SystemExit(f"the decoders were exported at different or unknown steps {sorted(map(str, steps))}; "
                             "give --compare-float32 a checkpoint file")
        path = checkpoint_path(path, next(iter(steps)))
    if not path.is_file():
        raise SystemExit(f"no checkpoint {path}")
    state = load_checkpoint(path)
    if state.get("encoder_sha256") != encoder_sha256:
        raise SystemExit(f"{path} was trained for encoder weights sha256 {state.get('encoder_sha256')}, not "
                         f"{encoder_sha256}")
    twins = {}
    for name, decoder in decoders.items():
        weights = state.get("decoders", {}).get(name)
        if weights is None:
            raise SystemExit(f"{path} holds no {name} decoder")
        if decoder.config.training.get("steps_done") != state["step"]:
            raise SystemExit(f"{name} was exported at step {decoder.config.training.get('steps_done')}, {path} is "
                             f"step {state['step']}")
        loaded = decoder.state_dict()
        if weights.keys() != loaded.keys() or not all(_rounds_to(weights[k], loaded[k]) for k in loaded):
            raise SystemExit(f"the weights of {name} in {path} are not those of the loaded decoder")
        twin = copy.deepcopy(decoder)
        twin.load_state_dict(weights)
        twins[name + FLOAT32_SUFFIX] = twin.float().eval()
    return twins


def _rounds_to(full: torch.Tensor, loaded: torch.Tensor) -> bool:
    return torch.equal(full.to(loaded.dtype), loaded) or (
        full.is_floating_point() and torch.equal(full.to(torch.float16).to(loaded.dtype), loaded))


def float16_vs_float32(results: dict[str, dict]) -> dict[str, dict]:
    """Pairs ``name`` and ``"<name> float32"`` of :func:`evaluate`'s results: both errors and their relative
    difference (float16 - float32) / float32."""
    pairs = {}
    for name, full in results.items():
        if name.endswith(FLOAT32_SUFFIX) and name.removesuffix(FLOAT32_SUFFIX) in results:
            half = results[name.removesuffix(FLOAT32_SUFFIX)]
            pairs[name.removesuffix(FLOAT32_SUFFIX)] = {
                "logmel_mae_float16": half["logmel_mae"], "logmel_mae_float32": full["logmel_mae"],
                "ratio_float16": half["ratio"], "ratio_float32": full["ratio"],
                "relative_difference": (half["logmel_mae"] - full["logmel_mae"]) / full["logmel_mae"]}
    return pairs


def held_out_audio(root: str | Path, split: str = "test_split", max_utterances: int = 200,
                   max_seconds: float = 8.0) -> list[np.ndarray]:
    """Up to ``max_utterances`` utterances of a LibriSpeech-layout corpus's ``split``, each cut to ``max_seconds``,
    spread evenly over the split file (so every speaker is in)."""
    paths = CorpusPaths(Path(root))
    ids = read_split(paths.split(split))
    picked = [ids[i] for i in np.linspace(0, len(ids) - 1, min(max_utterances, len(ids))).round().astype(int)]
    stop = int(max_seconds * 16_000)
    return [read_audio(utterance_path(paths.audio_dir, u), stop=stop) for u in dict.fromkeys(picked)]


def table(results: dict[str, dict]) -> str:
    lines = ["| decoder | steps | log-mel MAE | per-clip-mean MAE | ratio |", "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['steps_done']} | {r['logmel_mae']:.3f} | {r['baseline_mae']:.3f} | "
                     f"{r['ratio']:.1%} |")
    return "\n".join(lines)


def precision_table(pairs: dict[str, dict]) -> str:
    lines = ["| decoder | MAE float16 | MAE float32 | ratio float16 | ratio float32 | float16 vs float32 |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, p in pairs.items():
        lines.append(f"| {name} | {p['logmel_mae_float16']:.4f} | {p['logmel_mae_float32']:.4f} | "
                     f"{p['ratio_float16']:.2%} | {p['ratio_float32']:.2%} | {p['relative_difference']:+.3%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.decoder_eval", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sim-mix")
    parser.add_argument("--decoders", type=Path, help="Folder of module-<m>/<kind>/ [default: the model's own].")
    parser.add_argument("--data", default="data/real", help="LibriSpeech-layout corpus; its test_split is used.")
    parser.add_argument("--split", default="test_split")
    parser.add_argument("--max-utterances", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path, help="Also write the results as JSON here.")
    parser.add_argument("--compare-float32", metavar="RUN_DIR_OR_CHECKPOINT",
                        help="Also evaluate the float32 weights of the decoders from their training.train_decoders "
                             "checkpoint and report the float16 decoders' relative error difference.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    start = time.perf_counter()
    encoder = load_for_cli(args.model)
    decoders = model_decoders(args.model, encoder, args.decoders)
    if not decoders:
        raise SystemExit(f"no decoders in {args.decoders or args.model}; train them with training.train_decoders")
    audio = held_out_audio(args.data, args.split, args.max_utterances, args.max_seconds)
    log.info("%d decoders, %d held-out utterances of %s", len(decoders), len(audio), args.data)
    twins = float32_twins(decoders, args.compare_float32, encoder_pin(encoder)) if args.compare_float32 else {}
    evaluated = evaluate(encoder, {**decoders, **twins}, audio)
    results = {name: evaluated[name] for name in decoders}
    pairs = float16_vs_float32(evaluated)
    print(table(results))
    if pairs:
        print(precision_table(pairs))
        worst = max(abs(p["relative_difference"]) for p in pairs.values())
        verdict = "within" if worst <= FLOAT16_TOLERANCE else "outside"
        print(f"float16 weights: largest error difference {worst:.3%}, {verdict} the {FLOAT16_TOLERANCE:.0%} bar")
    bar = results.get("module-2/logmel")
    if bar is not None:
        verdict = "meets" if bar["ratio"] <= ACCEPTANCE_RATIO else "misses"
        print(f"module-2 log-mel ratio {bar['ratio']:.1%} {verdict} the {ACCEPTANCE_RATIO:.0%} bar")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"model": args.model, "data": args.data, "split": args.split, "results": results}
        if pairs:
            record["float16_vs_float32"] = {"checkpoint": str(args.compare_float32), "decoders": pairs}
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    log.info("done in %.0f s", time.perf_counter() - start)


if __name__ == "__main__":
    main()
