"""Bar chart of probe accuracy per model and module, from the ``results.json`` of ``training.evaluate``.

    python -m training.plot_results results/synth/results.json docs/figures/synth-probe-accuracy.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from smooth_infomax.analysis.figures import figure_png


def accuracy_rows(results: dict, task: str) -> dict[str, dict[str, float]]:
    """``{model: {features: test accuracy in %}}`` for ``task`` (``phone`` or ``speaker``)."""
    rows: dict[str, dict[str, float]] = {}
    for model in results["models"]:
        for features, entry in model["features"].items():
            if task in entry:
                rows.setdefault(model["name"], {})[features] = 100 * entry[task]["test"]["accuracy"]
    return rows


def probe_figure(results: dict):
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    titles = ("phone (41 classes, frames)", f"speaker ({results['corpus']['speakers']}, pooled crops)")
    for ax, task, title in zip(axes, ("phone", "speaker"), titles, strict=True):
        rows = accuracy_rows(results, task)
        columns = list(dict.fromkeys(f for model in rows.values() for f in model))
        width = 0.8 / len(rows)
        present = {f: [name for name, values in rows.items() if f in values] for f in columns}
        for name, values in rows.items():
            xs = [columns.index(f) + (present[f].index(name) - (len(present[f]) - 1) / 2) * width for f in values]
            ax.bar(xs, list(values.values()), width, label=name)
        ax.set_xticks(range(len(columns)), columns, rotation=20)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[1].legend(fontsize=8, loc="lower right")
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("png", type=Path)
    args = parser.parse_args(argv)
    args.png.write_bytes(figure_png(probe_figure(json.loads(args.results.read_text()))))
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
