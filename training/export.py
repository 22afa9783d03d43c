"""Export a training checkpoint to a ``save_pretrained`` folder (verified by reloading), and push it to the Hub.

    python -m training.export runs/sim_synth OUT_DIR [--step N] [--training-data "..."] \
        [--results results/results.json --results-model sim] [--weights-dtype float16]
    python -m training.export runs/sim_synth OUT_DIR --push org/name
    python -m training.export runs/sim_deboer OUT_DIR --results results/deboer/results.json --results-model sim

The card's licence follows the training data: MIT by default, CC-BY-NC-SA-4.0 for a model trained on de Boer's
Artificial Speech Dataset (``layout: deboer``; see :data:`DATA_LICENSES`); ``--license`` overrides it.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from smooth_infomax import EncoderConfig, SmoothInfoMaxEncoder
from smooth_infomax.card import ModelCard, with_location
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


ASD_LICENSE_NOTE = (
    "The weights are released under CC-BY-NC-SA-4.0, not MIT, because they were trained on the Artificial Speech "
    "Dataset of the Smooth InfoMax paper (github.com/fdenoodt/Artificial-Speech-Dataset), which is licensed "
    "CC-BY-NC-SA-4.0. Whether trained weights are an adaptation of their training data is not settled, so they "
    "follow the data's terms: credit the dataset, no commercial use, and share adaptations under the same licence. "
    "The smooth-infomax code that loads them stays MIT.")
DATA_LICENSES = {"deboer": ("cc-by-nc-sa-4.0", ASD_LICENSE_NOTE)}
"""Hub licence id and card text for weights trained on a data layout whose licence is not MIT-compatible."""


def probe_metrics(results: dict, model_name: str) -> dict[str, float]:
    """Flatten one model's entries of ``training.evaluate``'s ``results.json`` into model-card metrics (test %):
    phone and speaker accuracy, and de Boer syllable and vowel accuracy per split with that split's chance rates."""
    metrics: dict[str, float] = {}
    names = [m["name"] for m in results.get("models", [])]
    for model in results.get("models", []):
        if model["name"] == model_name:
            for features, entry in model["features"].items():
                for task in ("phone", "speaker"):
                    if entry.get(task):
                        metrics[f"{task} accuracy, {features} (%)"] = round(100 * entry[task]["test"]["accuracy"], 2)
    for split_name, split in results.get("deboer", {}).get("splits", {}).items():
        names += [name for name in split["models"] if name not in names]
        if model_name not in split["models"]:
            continue
        where = f"ASD {split_name} split"
        for task in ("syllable", "vowel"):
            for features, entry in split["models"][model_name].items():
                metrics[f"{task} accuracy, {features}, {where} (%)"] = round(100 * entry[task]["test"]["accuracy"], 2)
            chance = split["chance"][task]
            metrics[f"{task} chance, majority class, {where} (%)"] = round(100 * chance["majority"]["accuracy"], 2)
            metrics[f"{task} chance, uniform, {where} (%)"] = round(100 * chance["uniform"], 2)
    if not metrics:
        raise ValueError(f"no model named {model_name!r} in the results; found {names}")
    return metrics


def comparison_table(results: dict, names: list[str]) -> str:
    """A markdown table of the best test accuracy per task of each named model of ``training.evaluate``'s
    ``results.json`` (every feature set of a model considered; which one is named), for the model card."""
    by_name = {model["name"]: model for model in results["models"]}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise ValueError(f"no model named {missing} in the results; found {sorted(by_name)}")
    rows = ["| model | best phone acc. (%) | best speaker acc. (%) |", "|---|---:|---:|"]
    for name in names:
        cells = [_best(by_name[name]["features"], task) for task in ("phone", "speaker")]
        rows.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def _best(features: dict, task: str) -> str:
    scored = [(entry[task]["test"]["accuracy"], name) for name, entry in features.items() if entry.get(task)]
    if not scored:
        return "-"
    accuracy, name = max(scored)
    return f"{100 * accuracy:.1f} ({name})"


def describe_data(train_config: dict) -> str:
    """What a run trained on, for the card, when ``--training-data`` does not say."""
    if train_config.get("layout") == "deboer":
        return ("the Artificial Speech Dataset of the Smooth InfoMax paper (de Boer; "
                "github.com/fdenoodt/Artificial-Speech-Dataset, CC-BY-NC-SA-4.0): the words of `reshuffledv2/train`, "
                f"each cut to its first {train_config['crop_samples']} samples at 16 kHz")
    return train_config["data_root"]


def data_license(train_config: dict) -> tuple[str | None, str]:
    """The licence id the card must carry for this training data, with the reason (``None``: the default, MIT)."""
    return DATA_LICENSES.get(train_config.get("layout", "librispeech"), (None, ""))


def set_card_license(card_path: str | Path, license_id: str, note: str = "") -> None:
    """Put ``license_id`` into the card's YAML header and ``note`` into a Licence section before the citation."""
    path = Path(card_path)
    text = path.read_text(encoding="utf-8")
    header_end = text.find("\n---", 3)
    if not text.startswith("---\n") or header_end < 0:
        raise ValueError(f"{path}: no YAML header to put the licence in")
    header, body = text[:header_end], text[header_end:]
    if re.search(r"^license:.*$", header, flags=re.M):
        header = re.sub(r"^license:.*$", f"license: {license_id}", header, count=1, flags=re.M)
    else:
        header += f"\nlicense: {license_id}"
    if note:
        section = f"## Licence\n\n{note}\n\n"
        if "## Citation" in body:
            body = body.replace("## Citation", section + "## Citation", 1)
        else:
            body += "\n" + section
    path.write_text(header + body, encoding="utf-8")


def point_card_at(card_path: str | Path, location: str) -> None:
    """Make the card's usage line load ``location`` (the repo the folder is pushed to); nothing else changes."""
    path = Path(card_path)
    with path.open(encoding="utf-8", newline="") as file:
        text = file.read()
    path.write_text(with_location(text, location), encoding="utf-8", newline="")


def export(run_dir: str | Path, out_dir: str | Path, step: int | None = None, training_data: str = "",
           metrics: dict[str, float] | None = None, notes: str = "", title: str = "",
           weights_dtype: torch.dtype | None = None, license_id: str | None = None) -> SmoothInfoMaxEncoder:
    """Write the encoder of ``run_dir`` (latest or given ``step``) to ``out_dir`` and check the written folder
    reproduces its features exactly. The card's licence is ``license_id``, or else the one its training data
    requires (:func:`data_license`), or else the package's default."""
    path = checkpoint_path(run_dir, step) if step is not None else latest_checkpoint(run_dir)
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint {'at step ' + str(step) if step else ''} in {run_dir}")
    encoder, state = encoder_from_checkpoint(path)
    train_config = json.loads(state["train_config"])
    card = ModelCard(title=title or f"Smooth InfoMax ({encoder.config.preset})",
                     training_data=training_data or describe_data(train_config),
                     training=describe_training(state), metrics=metrics or {}, notes=notes)
    encoder.save_pretrained(out_dir, card, weights_dtype)
    required, note = data_license(train_config)
    chosen = license_id or required
    if chosen:
        set_card_license(Path(out_dir) / "README.md", chosen, note if chosen == required else "")
    _verify(encoder, out_dir, exact=weights_dtype is None)
    return encoder


def _verify(encoder: SmoothInfoMaxEncoder, folder: str | Path, exact: bool) -> None:
    """Reload ``folder``: features must be identical, or within 1e-2 relative error for reduced-precision weights."""
    reloaded = SmoothInfoMaxEncoder.from_pretrained(folder)
    wav = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    for a, b in zip(encoder.extract(wav, sample_rate=16000), reloaded.extract(wav, sample_rate=16000), strict=True):
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
    parser.add_argument("--compare", nargs="+", default=[], metavar="NAME",
                        help="models of --results to list beside this one in the card's notes (best feature each)")
    parser.add_argument("--license", default=None, metavar="ID",
                        help="Hub licence id for the card (default: what the training data requires, else mit)")
    parser.add_argument("--push", default=None, metavar="REPO_ID", help="also upload to this Hub repo")
    args = parser.parse_args(argv)
    metrics, notes = None, args.notes
    if args.results:
        results = json.loads(Path(args.results).read_text())
        metrics = probe_metrics(results, args.results_model or "")
        if args.compare:
            table = comparison_table(results, [args.results_model or "", *args.compare])
            notes = f"{notes}\n\nIn the same evaluation run ({args.results}):\n\n{table}".strip()
    dtype = torch.float16 if args.weights_dtype == "float16" else None
    encoder = export(args.run_dir, args.out_dir, args.step, args.training_data, metrics, notes, args.title, dtype,
                     args.license)
    print(f"wrote {args.out_dir}")
    if args.push:
        from smooth_infomax.hub import upload_folder

        point_card_at(Path(args.out_dir) / "README.md", args.push)
        url = upload_folder(args.out_dir, args.push)
        print(f"pushed {encoder.config.preset} to {args.push}: {url}")


if __name__ == "__main__":
    main()
