"""Training configs: a JSON base plus small overlays whose diff is the experiment.

A config file is a JSON object. ``"include"`` names other config files (relative to this one) that are merged
first, in order; the file's own keys then override them. Nested objects merge key by key. The result must name
only fields of ``TrainConfig``; anything else is an error naming the key.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smooth_infomax import EncoderConfig, preset

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on.

    ``model`` overrides fields of the preset's ``EncoderConfig`` (e.g. ``{"loss": {"kl_weight": 0.01}}``).
    ``steps`` counts optimiser updates, unless ``epochs`` > 0 (then the run lasts that many passes over the
    training utterances); ``batch_size`` is per process. ``val_fraction`` of the training
    utterances (chosen by a hash of their ids, so stable) is held out for validation.

    ``mix`` adds corpora to ``data_root``: ``{root: share}`` gives each extra corpus that share of every epoch's
    crops (the rest come from ``data_root``); a corpus smaller than its share is visited several times per epoch,
    each time with new crops. ``bf16`` turns on bfloat16 autocast on a GPU; on a CPU only ``bf16_cpu`` does, and
    only where the CPU computes bfloat16 natively (AVX-512 BF16 or AMX), since elsewhere it is slower than float32.

    ``speeds`` perturbs the speed of a corpus's training crops: ``{root: [0.9, 1.0, 1.1]}`` gives each crop of that
    corpus (``data_root`` or a ``mix`` root) one factor drawn uniformly (``CropDataset``); validation crops are never
    perturbed.

    ``init_from`` starts a new run (not a resumed one) from an exported model's encoder weights: a model folder, a
    shipped name (``sim-mix``) or a Hub id, whose architecture (not its loss settings) must equal this run's; the
    predictors and the optimiser start fresh. It continues a model whose checkpoints are gone, e.g. the shipped one.
    ``predictor_warmup_steps`` keeps the encoder still for the run's first steps (its gradients are dropped before
    each update), so that fresh predictors learn to read a trained encoder before their gradients move it.

    ``layout`` says how ``data_root`` is organised: ``"librispeech"`` (real, synthetic or Debian corpora: audio under
    ``LibriSpeech/``, split files under ``LibriSpeech100_labels_split/``) or ``"deboer"`` (the Artificial Speech
    Dataset's folder: training words from ``reshuffledv2/train``, each cut to its first ``crop_samples`` samples,
    validation on ``reshuffledv2/test``, as the reference; ``train_split``, ``val_fraction`` and ``mix`` do not apply).
    """

    preset: str = "sim"
    model: dict[str, Any] = field(default_factory=dict)
    data_root: str = "data/synth"
    layout: str = "librispeech"
    mix: dict[str, float] = field(default_factory=dict)
    speeds: dict[str, list[float]] = field(default_factory=dict)
    train_split: str = "train_split.txt"
    val_fraction: float = 0.05
    crop_samples: int = 20480
    batch_size: int = 8
    steps: int = 1000
    epochs: int = 0
    learning_rate: float = 2e-4
    lr_decay: float = 1.0
    seed: int = 4
    num_workers: int = 2
    checkpoint_every: int = 500
    val_every: int = 500
    val_batches: int = 20
    log_every: int = 10
    out_dir: str = "runs/sim"
    device: str = "auto"
    bf16: bool = True
    bf16_cpu: bool = False
    deterministic: bool = False
    tensorboard: bool = True
    init_from: str = ""
    predictor_warmup_steps: int = 0

    def __post_init__(self) -> None:
        checks = {
            "batch_size": self.batch_size >= 1, "steps": self.steps >= 1, "epochs": self.epochs >= 0,
            "learning_rate": self.learning_rate > 0,
            "crop_samples": self.crop_samples >= 160, "num_workers": self.num_workers >= 0,
            "checkpoint_every": self.checkpoint_every >= 1, "val_every": self.val_every >= 1,
            "predictor_warmup_steps": self.predictor_warmup_steps >= 0,
            "val_batches": self.val_batches >= 1, "log_every": self.log_every >= 1,
            "val_fraction": 0.0 < self.val_fraction < 1.0, "lr_decay": 0.0 < self.lr_decay <= 1.0,
            "device": self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda"),
            "mix": all(share > 0 for share in self.mix.values()) and sum(self.mix.values()) < 1.0,
            "layout": self.layout == "librispeech" or self.layout == "deboer" and not self.mix,
            "speeds": not self.speeds or self.layout == "librispeech" and set(self.speeds) <= {self.data_root,
                                                                                               *self.mix},
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training config value(s): {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")
        self.encoder_config()  # validates the preset and the model overrides

    def encoder_config(self) -> EncoderConfig:
        """The preset with ``model`` overrides applied (validated: unknown keys are errors)."""
        return EncoderConfig.from_dict(merge_dicts(preset(self.preset).to_dict(), self.model))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a config file (resolving ``include``), apply ``overrides`` and validate."""
    data = merge_dicts(_read_with_includes(_find(path), set()), overrides or {})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown training config key(s) {unknown}; known: {sorted(known)}")
    return TrainConfig(**data)


def parse_override(text: str) -> dict[str, Any]:
    """``"a.b=1"`` -> ``{"a": {"b": 1}}``; the value is parsed as JSON when it can be, else kept as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"override {text!r} must look like key=value or a.b=value")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def _find(path: str | Path) -> Path:
    path = Path(path)
    if path.is_file():
        return path
    named = CONFIG_DIR / f"{path}.json"
    if named.is_file():
        return named
    raise FileNotFoundError(f"no config file {path} (nor {named})")


def _read_with_includes(path: Path, seen: set[Path]) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ValueError(f"{path}: include cycle")
    data = json.loads(path.read_text(encoding="utf-8"))
    merged: dict[str, Any] = {}
    for name in data.pop("include", []):
        merged = merge_dicts(merged, _read_with_includes(path.parent / name, seen | {path}))
    return merge_dicts(merged, data)


def merge_dicts(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``; nested dicts merge key by key."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out
