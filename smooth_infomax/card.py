"""Model cards: the ``README.md`` written beside every saved model, with Hub metadata in its YAML header.

A new card is rendered from a :class:`ModelCard` (what the config cannot say: training data, results, notes). A
card read back with a model (``encoder.card``, a ``huggingface_hub.ModelCard``) is written again as it was: only its
usage line, ``encoder = SmoothInfoMaxEncoder.from_pretrained("...")``, is pointed at where the copy is saved or
pushed (see :func:`with_location`).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .config import EncoderConfig, estimate_parameters
from .geometry import module_geometries

if TYPE_CHECKING:
    from huggingface_hub import ModelCard as HubModelCard

LOCATION_PLACEHOLDER = "<this repo or folder>"
"""What a card's usage line loads when rendered without a location (as in cards that earlier versions saved)."""
_USAGE_LINE = re.compile(r"^(?P<call>encoder = SmoothInfoMaxEncoder\.from_pretrained\().*\)(?P<end>[ \t]*\r?)$",
                         flags=re.M)

CITATION = """@inproceedings{denoodt2025smooth,
  title     = {Smooth InfoMax: Towards Easier Post-Hoc Interpretability},
  author    = {Denoodt, Fabian and de Boer, Bart and Oramas, Jos{\\'e}},
  booktitle = {Machine Learning and Knowledge Discovery in Databases (ECML PKDD)},
  year      = {2025},
  note      = {arXiv:2408.12936}
}"""


@dataclass(frozen=True)
class ModelCard:
    """What a model card says beyond the config.

    Attributes:
        title: heading of the card.
        training_data: what the model was trained on, in words (say so plainly for synthetic data).
        datasets: Hub dataset ids for the metadata header.
        training: how it was trained (steps, batch, hardware, wall time).
        metrics: measured results, e.g. ``{"phone accuracy, module 2 (%)": 61.3}``.
        notes: limitations and anything else a user should know.
    """

    title: str = "Smooth InfoMax speech encoder"
    training_data: str = "not recorded"
    datasets: tuple[str, ...] = ()
    training: str = "not recorded"
    metrics: dict[str, float] = field(default_factory=dict)
    notes: str = ""


def hub_metadata(tags: Sequence[str], datasets: Sequence[str] = (), pipeline_tag: str | None = None) -> str:
    """The YAML header the Hub reads from a card (library, licence, pipeline, tags, datasets), written by
    ``huggingface_hub.ModelCardData`` so that the keys are the ones the Hub knows; ends with a newline."""
    from huggingface_hub import ModelCardData

    data = ModelCardData(library_name="smooth-infomax", license="mit", pipeline_tag=pipeline_tag, tags=list(tags),
                         datasets=list(datasets) or None)
    return f"---\n{data.to_yaml()}\n---\n"


def render_model_card(config: EncoderConfig, card: ModelCard, location: str | None = None,
                      revision: str | None = None) -> str:
    """The card's Markdown, with a YAML header the Hub reads (library, licence, tags, datasets); its usage line loads
    ``location`` at ``revision`` (see :func:`usage_arguments`), or says ``<this repo or folder>`` without one."""
    header = hub_metadata(("audio", "speech", "self-supervised-learning", "smooth-infomax", config.preset),
                          card.datasets, pipeline_tag="feature-extraction")
    body = [
        f"# {card.title}",
        "",
        "Load it with [smooth-infomax](https://pypi.org/project/smooth-infomax/):",
        "",
        "```python",
        "from smooth_infomax import SmoothInfoMaxEncoder",
        f"encoder = SmoothInfoMaxEncoder.from_pretrained({usage_arguments(location, revision)})",
        "features = encoder.extract(wav, sample_rate=16000)  # per-module means, log-variances, samples",
        "```",
        "",
        f"- Preset: `{config.preset}`; parameters (without InfoNCE predictors): {estimate_parameters(config):,}",
        f"- Training data: {card.training_data}",
        f"- Training: {card.training}",
        f"- Loss: K = {config.loss.prediction_steps} prediction steps, {config.loss.negatives} negatives, "
        f"KL weight {config.loss.kl_weight} ({config.loss.kl_normalisation})",
        "",
        *_modules_table(config),
        *_metrics_table(card.metrics),
    ]
    if card.notes:
        body += ["## Notes", "", card.notes, ""]
    body += ["## Citation", "", "```bibtex", CITATION, "```", ""]
    return header + "\n".join(body)


def _modules_table(config: EncoderConfig) -> list[str]:
    rows = ["## Modules", "", "| module | output | dim | hop (samples) | receptive field (samples) |",
            "|---|---|---|---|---|"]
    heads = {"gaussian": "Gaussian", "mean": "linear mean"}
    per_module = zip(config.modules, config.output_dims(), module_geometries(config), strict=True)
    for index, (module, dim, geo) in enumerate(per_module):
        kind = "GRU" if module.gru_hidden_size else heads.get(module.head, "ReLU conv")
        field_text = "to the start (GRU)" if geo.receptive_field_samples is None else str(geo.receptive_field_samples)
        rows.append(f"| {index} | {kind} | {dim} | {geo.hop_samples} | {field_text} |")
    return rows + [""]


def _metrics_table(metrics: dict[str, float]) -> list[str]:
    if not metrics:
        return ["## Results", "", "No evaluation recorded for this model.", ""]
    rows = ["## Results", "", "| metric | value |", "|---|---|"]
    rows += [f"| {name} | {value:.2f} |" if isinstance(value, float) else f"| {name} | {value} |"
             for name, value in metrics.items()]
    return rows + [""]


# --- cards read back with a model ----------------------------------------------------------------------------------

def usage_arguments(location: str | None, revision: str | None = None) -> str:
    """The arguments of the card's ``from_pretrained(...)`` line as Python source: the location as a string literal
    (JSON quoting is valid Python for any path or repo id), then ``revision="..."`` when given."""
    arguments = json.dumps(LOCATION_PLACEHOLDER if location is None else location, ensure_ascii=False)
    return arguments + (f", revision={json.dumps(revision, ensure_ascii=False)}" if revision else "")


def with_location(markdown: str, location: str, revision: str | None = None) -> str:
    """``markdown`` with its first usage line (``encoder = SmoothInfoMaxEncoder.from_pretrained(...)``) loading
    ``location`` at ``revision``; every other byte unchanged. A card without that line is returned as it is."""
    arguments = usage_arguments(location, revision)
    return _USAGE_LINE.sub(lambda m: f"{m['call']}{arguments}){m['end']}", markdown, count=1)


def read_card(path: Path) -> HubModelCard | None:
    """The model card in ``path`` as a ``huggingface_hub.ModelCard`` (``.data``: the YAML header's metadata,
    ``.text``: the Markdown after it, byte for byte), or ``None`` when there is no such file. The header is read with
    ``yaml.safe_load``: nothing in a card is executed. A card whose header cannot be read warns and gives ``None``
    (the model still loads; saving it writes a new card)."""
    from huggingface_hub import ModelCard as HubModelCard

    if not path.is_file():
        return None
    with path.open(encoding="utf-8-sig", newline="") as file:  # newline="": keep the card's own line endings
        text = file.read()
    try:
        return HubModelCard(text, ignore_metadata_errors=True)
    except Exception as err:  # noqa: BLE001 -- yaml errors, a header that is not a mapping, bad metadata values
        warnings.warn(f"{path}: model card not read ({type(err).__name__}: {err}); saving the model writes a new "
                      "card", stacklevel=3)
        return None


def card_markdown(card: HubModelCard, location: str, revision: str | None = None) -> str:
    """The text to write for a card read back with a model: its metadata header (written from ``card.data``, so
    edits to it are kept; a card without metadata gets no header) and its Markdown with the usage line loading
    ``location`` (:func:`with_location`)."""
    content = card.content
    header = content[: len(content) - len(card.text)] if card.data.to_dict() else ""
    return header + with_location(card.text, location, revision)
