"""Model configuration: frozen dataclasses with JSON round trip, validation and presets.

A config fully describes an encoder's architecture and the loss settings it was trained with. It travels with the
weights as ``config.json``; the architecture is never inferred from tensor shapes.

Presets (``preset(name)``):

- ``sim``: Smooth InfoMax as in the paper's code: 3 conv modules of 2/2/1 layers with BatchNorm and Gaussian
  (mean, log-variance) 1x1 heads, then a GRU module (512 -> 256); K = 10, KL weight 0.001.
- ``gim_sim_repo``: the SIM repository's GIM baseline: the same modules with a deterministic linear mean head.
- ``gim``: faithful Greedy InfoMax (loeweX): 5 single-layer conv modules with ReLU outputs, no heads, no
  BatchNorm, then a GRU module; K = 12.
- ``cpc``: end-to-end CPC: one module made of the conv stack, a linear mean head and the GRU.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

FORMAT_VERSION = 1
"""Version of the config.json layout this package writes; files from a newer version are refused."""

HeadKind = Literal["none", "mean", "gaussian"]
KLNormalisation = Literal["time_sum", "per_element"]

# Upper bounds that no sensible SIM model exceeds; a config beyond them is rejected before anything is allocated.
_MAX_CHANNELS = 8192
_MAX_KERNEL = 4096
_MAX_MODULES = 64
_MAX_LAYERS_PER_MODULE = 64
_MAX_PARAMETERS = 2_000_000_000


@dataclass(frozen=True)
class ConvLayerConfig:
    """One Conv1d layer of a module, optionally followed by BatchNorm and ReLU."""

    kernel_size: int
    stride: int
    padding: int
    channels: int = 512
    relu: bool = True

    def validate(self, where: str) -> None:
        _check_int(f"{where}.kernel_size", self.kernel_size, 1, _MAX_KERNEL)
        _check_int(f"{where}.stride", self.stride, 1, _MAX_KERNEL)
        _check_int(f"{where}.padding", self.padding, 0, _MAX_KERNEL)
        _check_int(f"{where}.channels", self.channels, 1, _MAX_CHANNELS)
        _check_bool(f"{where}.relu", self.relu)


@dataclass(frozen=True)
class ModuleConfig:
    """One gradient-isolated module: conv layers, then an optional 1x1 head, then an optional GRU.

    ``head``: ``"none"`` (the module outputs its last conv layer), ``"mean"`` (a linear 1x1 mean head) or
    ``"gaussian"`` (1x1 mean and log-variance heads; the module is a diagonal Gaussian). ``gru_hidden_size``: size of
    a one-layer GRU run over the module's frames (0 for none).
    """

    conv_layers: tuple[ConvLayerConfig, ...] = ()
    batch_norm: bool = False
    head: HeadKind = "none"
    gru_hidden_size: int = 0

    def validate(self, where: str) -> None:
        if not isinstance(self.conv_layers, tuple):
            raise ValueError(f"{where}.conv_layers must be a list of conv layers")
        if len(self.conv_layers) > _MAX_LAYERS_PER_MODULE:
            raise ValueError(f"{where}.conv_layers has {len(self.conv_layers)} layers; "
                             f"at most {_MAX_LAYERS_PER_MODULE}")
        for i, layer in enumerate(self.conv_layers):
            if not isinstance(layer, ConvLayerConfig):
                raise ValueError(f"{where}.conv_layers[{i}] must be a conv layer config")
            layer.validate(f"{where}.conv_layers[{i}]")
        _check_bool(f"{where}.batch_norm", self.batch_norm)
        if self.head not in ("none", "mean", "gaussian"):
            raise ValueError(f"{where}.head must be 'none', 'mean' or 'gaussian', not {self.head!r}")
        if self.head != "none" and not self.conv_layers:
            raise ValueError(f"{where}.head needs conv layers to read from")
        _check_int(f"{where}.gru_hidden_size", self.gru_hidden_size, 0, _MAX_CHANNELS)
        if not self.conv_layers and not self.gru_hidden_size:
            raise ValueError(f"{where} has neither conv layers nor a GRU")

    @property
    def is_gaussian(self) -> bool:
        return self.head == "gaussian"


@dataclass(frozen=True)
class LossConfig:
    """Settings of the per-module InfoNCE and KL losses (read by training, reported in model cards).

    ``kl_normalisation``: ``"time_sum"`` is the reference code's form (KL summed over frames, averaged over batch
    and channels, so its strength grows with the number of frames); ``"per_element"`` averages over every element.
    """

    prediction_steps: int = 10
    negatives: int = 10
    positive_window_frames: int = 128
    kl_weight: float = 0.0
    kl_normalisation: KLNormalisation = "time_sum"

    def validate(self) -> None:
        _check_int("loss.prediction_steps", self.prediction_steps, 1, 1024)
        _check_int("loss.negatives", self.negatives, 1, 100_000)
        _check_int("loss.positive_window_frames", self.positive_window_frames, 2, 1_000_000)
        if not isinstance(self.kl_weight, (int, float)) or isinstance(self.kl_weight, bool) or self.kl_weight < 0:
            raise ValueError(f"loss.kl_weight must be a number >= 0, not {self.kl_weight!r}")
        if self.kl_normalisation not in ("time_sum", "per_element"):
            raise ValueError("loss.kl_normalisation must be 'time_sum' or 'per_element', "
                             f"not {self.kl_normalisation!r}")


@dataclass(frozen=True)
class EncoderConfig:
    """A whole encoder: its modules in order, the input convention and the loss settings.

    ``input_gain`` and ``input_offset`` map the [-1, 1] float waveform before the first layer (x * gain + offset);
    1 and 0 everywhere except the optional GIM input scaling.
    """

    modules: tuple[ModuleConfig, ...]
    loss: LossConfig = field(default_factory=LossConfig)
    preset: str = "custom"
    sample_rate: int = 16_000
    in_channels: int = 1
    input_gain: float = 1.0
    input_offset: float = 0.0
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check_int("format_version", self.format_version, 1, 10**6)
        if self.format_version > FORMAT_VERSION:
            raise ValueError(
                f"format_version {self.format_version} is newer than this smooth-infomax understands "
                f"({FORMAT_VERSION}); upgrade with `pip install -U smooth-infomax`"
            )
        if not isinstance(self.modules, tuple) or not self.modules:
            raise ValueError("modules must be a non-empty list of module configs")
        if len(self.modules) > _MAX_MODULES:
            raise ValueError(f"modules has {len(self.modules)} entries; at most {_MAX_MODULES}")
        for i, module in enumerate(self.modules):
            if not isinstance(module, ModuleConfig):
                raise ValueError(f"modules[{i}] must be a module config")
            module.validate(f"modules[{i}]")
        if not isinstance(self.loss, LossConfig):
            raise ValueError("loss must be a loss config")
        self.loss.validate()
        _check_int("sample_rate", self.sample_rate, 1000, 384_000)
        _check_int("in_channels", self.in_channels, 1, 64)
        for name in ("input_gain", "input_offset"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
                raise ValueError(f"{name} must be a finite number, not {value!r}")
        n_params = estimate_parameters(self)
        if n_params > _MAX_PARAMETERS:
            raise ValueError(f"modules describe about {n_params:,} parameters; at most {_MAX_PARAMETERS:,} are allowed")

    # --- derived geometry -------------------------------------------------------------------------------------

    def output_dims(self) -> list[int]:
        """Feature size of each module's output, e.g. ``[512, 512, 512, 256]`` for ``sim``."""
        dims, channels = [], self.in_channels
        for module in self.modules:
            if module.conv_layers:
                channels = module.conv_layers[-1].channels
            if module.gru_hidden_size:
                channels = module.gru_hidden_size
            dims.append(channels)
        return dims

    # --- JSON ---------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        """Build a config from a plain dict; an unknown or missing key is a ``ValueError`` naming it."""
        data = strict_fields(cls, data, "config")
        version = data.get("format_version", FORMAT_VERSION)
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise ValueError(
                f"config format_version {version} is newer than this smooth-infomax understands ({FORMAT_VERSION}); "
                "upgrade with `pip install -U smooth-infomax`"
            )
        if "modules" not in data or not isinstance(data["modules"], (list, tuple)):
            raise ValueError("config.modules must be a list")
        modules = tuple(_module_from_dict(m, f"modules[{i}]") for i, m in enumerate(data["modules"]))
        loss = LossConfig(**strict_fields(LossConfig, data.get("loss", {}), "loss"))
        return cls(**{**data, "modules": modules, "loss": loss})

    @classmethod
    def from_json(cls, text: str) -> EncoderConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"config is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ValueError("config must be a JSON object")
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: str | Path) -> EncoderConfig:
        path = Path(path)
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


def _module_from_dict(data: Any, where: str) -> ModuleConfig:
    data = strict_fields(ModuleConfig, data, where)
    layers = data.get("conv_layers", [])
    if not isinstance(layers, (list, tuple)):
        raise ValueError(f"{where}.conv_layers must be a list")
    conv = tuple(ConvLayerConfig(**strict_fields(ConvLayerConfig, d, f"{where}.conv_layers[{j}]"))
                 for j, d in enumerate(layers))
    return ModuleConfig(**{**data, "conv_layers": conv})


def check_format(kind: str, expected_kind: str, version: int, newest_version: int, what: str) -> None:
    """Refuse a saved config of another ``kind`` or of a ``format_version`` newer than this package reads."""
    if kind != expected_kind:
        raise ValueError(f"not a {what} config (kind {kind!r}, expected {expected_kind!r})")
    if version > newest_version:
        raise ValueError(f"{what} format_version {version} is newer than this package understands")


def strict_fields(cls: type, data: Any, where: str) -> dict[str, Any]:
    """``data`` as keyword arguments of the dataclass ``cls``: a JSON object with no unknown and no missing keys,
    else a ``ValueError`` naming ``where`` and the keys."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a JSON object, not {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(fields)}")
    required = [n for n, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [n for n in required if n not in data]
    if missing:
        raise ValueError(f"{where} is missing key(s) {', '.join(map(repr, missing))}")
    return dict(data)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} = {value} is outside the allowed range [{low}, {high}]")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")


def estimate_parameters(config: EncoderConfig) -> int:
    """Parameter count of the encoder a config describes, computed from the config alone (no allocation)."""
    total, channels = 0, config.in_channels
    for module in config.modules:
        for layer in module.conv_layers:
            total += layer.channels * channels * layer.kernel_size + layer.channels
            total += 2 * layer.channels if module.batch_norm else 0
            channels = layer.channels
        heads = {"none": 0, "mean": 1, "gaussian": 2}.get(module.head, 0)
        total += heads * (channels * channels + channels)
        if module.gru_hidden_size:
            hidden = module.gru_hidden_size
            total += 3 * (hidden * channels + hidden * hidden + 2 * hidden)
            channels = hidden
    return total


# --- presets ---------------------------------------------------------------------------------------------------

CPC_CONV_LAYERS = (
    ConvLayerConfig(kernel_size=10, stride=5, padding=2),
    ConvLayerConfig(kernel_size=8, stride=4, padding=2),
    ConvLayerConfig(kernel_size=4, stride=2, padding=2),
    ConvLayerConfig(kernel_size=4, stride=2, padding=2),
    ConvLayerConfig(kernel_size=4, stride=2, padding=1),
)
"""The CPC raw-waveform conv stack shared by every preset (total stride 160 samples)."""

GRU_HIDDEN_SIZE = 256
GIM_INPUT_GAIN = 2**31 / 135_303_504
"""GIM's input scaling ((int32 + 1456218.75) / 135303504) expressed on [-1, 1] floats: about 15.87 x + 0.0108."""
GIM_INPUT_OFFSET = 1_456_218.75 / 135_303_504


def _sim_modules(head: HeadKind) -> tuple[ModuleConfig, ...]:
    groups = (CPC_CONV_LAYERS[0:2], CPC_CONV_LAYERS[2:4], CPC_CONV_LAYERS[4:5])
    conv = tuple(ModuleConfig(conv_layers=g, batch_norm=True, head=head) for g in groups)
    return conv + (ModuleConfig(gru_hidden_size=GRU_HIDDEN_SIZE),)


def preset(name: str) -> EncoderConfig:
    """The named preset config: ``sim``, ``gim_sim_repo``, ``gim`` or ``cpc``."""
    if name == "sim":
        return EncoderConfig(modules=_sim_modules("gaussian"), loss=LossConfig(kl_weight=0.001), preset="sim")
    if name == "gim_sim_repo":
        return EncoderConfig(modules=_sim_modules("mean"), loss=LossConfig(kl_weight=0.0), preset="gim_sim_repo")
    if name == "gim":
        conv = tuple(ModuleConfig(conv_layers=(layer,)) for layer in CPC_CONV_LAYERS)
        modules = conv + (ModuleConfig(gru_hidden_size=GRU_HIDDEN_SIZE),)
        return EncoderConfig(modules=modules, loss=LossConfig(prediction_steps=12), preset="gim")
    if name == "cpc":
        module = ModuleConfig(conv_layers=CPC_CONV_LAYERS, head="mean", gru_hidden_size=GRU_HIDDEN_SIZE)
        return EncoderConfig(modules=(module,), preset="cpc")
    raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")


PRESETS = ("sim", "gim_sim_repo", "gim", "cpc")
