"""Model cards: the ``README.md`` written beside every saved model, with Hub metadata in its YAML header."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .config import EncoderConfig, estimate_parameters
from .geometry import module_geometries

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


def render_model_card(config: EncoderConfig, card: ModelCard) -> str:
    """The card's Markdown, with a YAML header the Hub reads (library, licence, tags, datasets)."""
    header = hub_metadata(("audio", "speech", "self-supervised-learning", "smooth-infomax", config.preset),
                          card.datasets, pipeline_tag="feature-extraction")
    body = [
        f"# {card.title}",
        "",
        "Load it with [smooth-infomax](https://pypi.org/project/smooth-infomax/):",
        "",
        "```python",
        "from smooth_infomax import SmoothInfoMaxEncoder",
        'encoder = SmoothInfoMaxEncoder.from_pretrained("<this repo or folder>")',
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
