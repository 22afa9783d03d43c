"""Export a training checkpoint to a ``save_pretrained`` folder (verified by reloading), and push it to the Hub.

    python -m training.export runs/sim_synth OUT_DIR [--step N] [--training-data "..."] \
        [--results results/results.json --results-model sim] [--weights-dtype float16]
    python -m training.export runs/sim_synth OUT_DIR --push org/name
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from smooth_infomax import EncoderConfig, SmoothInfoMaxEncoder
from smooth_infomax.card import ModelCard
from training.checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint


def encoder_from_checkpoint(path: str | Path) -> tuple[SmoothInfoMaxEncoder, dict]:
    """The encoder stored in a training checkpoint (eval mode) and the checkpoint itself."""
    state = load_checkpoint(path)
    encoder = SmoothInfoMaxEncoder(EncoderConfig.from_json(state["encoder_config"]))
    encoder.load_state_dict(state["encoder"], strict=True)
    return encoder.eval(), state


def describe_training(state: dict) -> str:
    config = json.loads(state["train_config"])
    hours = state["elapsed_s"] / 3600
    return (f"{state['step']:,} steps of batch {config['batch_size']} x {state['world']} process(es), "
            f"{config['crop_samples']}-sample crops, Adam lr {config['learning_rate']}, "
            f"{hours:.2f} h on {state['device']}")


def probe_metrics(results: dict, model_name: str) -> dict[str, float]:
    """Flatten one model's entry of ``training.evaluate``'s ``results.json`` into model-card metrics (test %)."""
    for model in results["models"]:
        if model["name"] == model_name:
            metrics = {}
            for features, entry in model["features"].items():
                for task in ("phone", "speaker"):
                    if entry.get(task):
                        metrics[f"{task} accuracy, {features} (%)"] = round(100 * entry[task]["test"]["accuracy"], 2)
            return metrics
    raise ValueError(f"no model named {model_name!r} in the results; found {[m['name'] for m in results['models']]}")


def export(run_dir: str | Path, out_dir: str | Path, step: int | None = None, training_data: str = "",
           metrics: dict[str, float] | None = None, notes: str = "", title: str = "",
           weights_dtype: torch.dtype | None = None) -> SmoothInfoMaxEncoder:
    """Write the encoder of ``run_dir`` (latest or given ``step``) to ``out_dir`` and check the written folder
    reproduces its features exactly."""
    path = checkpoint_path(run_dir, step) if step is not None else latest_checkpoint(run_dir)
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint {'at step ' + str(step) if step else ''} in {run_dir}")
    encoder, state = encoder_from_checkpoint(path)
    data = training_data or json.loads(state["train_config"])["data_root"]
    card = ModelCard(title=title or f"Smooth InfoMax ({encoder.config.preset})", training_data=data,
                     training=describe_training(state), metrics=metrics or {}, notes=notes)
    encoder.save_pretrained(out_dir, card, weights_dtype)
    _verify(encoder, out_dir, exact=weights_dtype is None)
    return encoder


def _verify(encoder: SmoothInfoMaxEncoder, folder: str | Path, exact: bool) -> None:
    """Reload ``folder``: features must be identical, or within 1e-2 relative error for reduced-precision weights."""
    reloaded = SmoothInfoMaxEncoder.from_pretrained(folder)
    wav = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    for a, b in zip(encoder.extract(wav, sample_rate=16000), reloaded.extract(wav, sample_rate=16000)):
        error = ((a.mean - b.mean).norm() / a.mean.norm().clamp_min(1e-12)).item()
        if (exact and error != 0.0) or error > 1e-2:
            raise RuntimeError(f"{folder}: reloaded model differs for module {a.index} (relative error {error:.2e})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--training-data", default="", help="what the model was trained on, for the model card")
    parser.add_argument("--results", default=None, help="results.json of training.evaluate, for the model card")
    parser.add_argument("--results-model", default=None, help="which model of --results this is")
    parser.add_argument("--weights-dtype", choices=["float32", "float16"], default="float32")
    parser.add_argument("--title", default="", help="heading of the model card")
    parser.add_argument("--notes", default="", help="limitations and notes for the model card")
    parser.add_argument("--push", default=None, metavar="REPO_ID", help="also upload to this Hub repo")
    args = parser.parse_args(argv)
    metrics = None
    if args.results:
        metrics = probe_metrics(json.loads(Path(args.results).read_text()), args.results_model or "")
    dtype = torch.float16 if args.weights_dtype == "float16" else None
    encoder = export(args.run_dir, args.out_dir, args.step, args.training_data, metrics, args.notes, args.title, dtype)
    print(f"wrote {args.out_dir}")
    if args.push:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(args.push, exist_ok=True)
        info = api.upload_folder(repo_id=args.push, folder_path=args.out_dir, commit_message="Upload smooth-infomax model")
        print(f"pushed {encoder.config.preset} to {args.push}: {info.commit_url}")


if __name__ == "__main__":
    main()
