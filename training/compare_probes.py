"""Paired differences in probe accuracy between the feature sets of one evaluation run, with 95 % intervals from
resampling the test utterances (the same draws for both sides: ``smooth_infomax.analysis.probes.paired_bootstrap``).

    python -m training.compare_probes results/real/results.json --reference sim-mix:GRU [--task phone]

Every other feature set of every model in ``results.json`` (written by ``training.evaluate``) is compared with the
reference; a difference whose interval holds 0 is within what the choice of test utterances explains.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from smooth_infomax.analysis.probes import paired_bootstrap


def per_item_counts(results: dict, task: str) -> dict[tuple[str, str], tuple[list[int], list[int]]]:
    """``{(model, features): (correct, total) per test utterance}`` for every feature set that has them."""
    counts = {}
    for model in results["models"]:
        for name, entry in model["features"].items():
            per_item = (entry.get(task) or {}).get("test", {}).get("per_item")
            if per_item is not None:
                counts[model["name"], name] = (per_item["correct"], per_item["total"])
    return counts


def compare(results: dict, reference: tuple[str, str], task: str = "phone", resamples: int = 10_000,
            seed: int = 0) -> list[dict]:
    """One row per other feature set: its accuracy and its difference from ``reference`` with a 95 % interval."""
    counts = per_item_counts(results, task)
    if reference not in counts:
        known = ", ".join(f"{m}:{f}" for m, f in counts) or "none (results.json predates per-utterance counts)"
        raise SystemExit(f"error: no per-utterance {task} counts for {reference[0]}:{reference[1]}; known: {known}")
    rows = []
    for key, other in counts.items():
        if key == reference:
            continue
        if len(other[0]) != len(counts[reference][0]):
            raise SystemExit(f"error: {key[0]}:{key[1]} was tested on other utterances than the reference")
        stats = paired_bootstrap(counts[reference], other, resamples, seed)
        rows.append({"model": key[0], "features": key[1], "accuracy": sum(other[0]) / sum(other[1]), **stats})
    return rows


def markdown(rows: list[dict], reference: tuple[str, str], task: str, n_items: int) -> str:
    lines = [f"{task} accuracy minus {reference[0]} {reference[1]}'s, in points; 95 % interval over {n_items} "
             "test utterances resampled with replacement", "",
             "| model | features | accuracy | difference | 95 % interval | resamples where better |",
             "|---|---|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['features']} | {100 * r['accuracy']:.1f} | {100 * r['difference']:+.1f} | "
                     f"{100 * r['low']:+.1f} to {100 * r['high']:+.1f} | {100 * r['share_b_better']:.0f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m training.compare_probes", description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="results.json of training.evaluate")
    parser.add_argument("--reference", required=True, metavar="MODEL:FEATURES", help="e.g. sim-mix:GRU")
    parser.add_argument("--task", default="phone", choices=("phone",))
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model, sep, features = args.reference.rpartition(":")
    if not sep or not model:
        parser.error("--reference must be MODEL:FEATURES, e.g. sim-mix:GRU")
    results = json.loads(args.results.read_text())
    rows = compare(results, (model, features), args.task, args.resamples, args.seed)
    n_items = len(per_item_counts(results, args.task)[model, features][0])
    print(markdown(rows, (model, features), args.task, n_items))
    return rows


if __name__ == "__main__":
    main()
