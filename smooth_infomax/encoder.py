"""``SmoothInfoMaxEncoder``: the stack of gradient-isolated modules, its training forward pass and ``extract``."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from .config import EncoderConfig, preset
from .deprecation import renamed_keyword
from .geometry import FrameGeometry, module_geometries
from .inference.chunks import iter_chunks, supports_chunking
from .inference.folding import FoldedEncoder, FoldedModule, fold_module
from .inference.machine import Sizes, SlowDtypeWarning, compute_dtype, slow_dtype_reason
from .inference.plan import folded_features
from .inference.stages import Request
from .inference.unfolded import differentiable_features, train_outputs
from .inputs import check_sample_rate, prepare_audio, warn_assumed_rate
from .layers import EncoderModule
from .outputs import Extraction, FrameRows, ModuleFeatures, ModuleTrainOutput

if TYPE_CHECKING:
    from huggingface_hub import ModelCard as HubModelCard

    from .card import ModelCard


class SmoothInfoMaxEncoder(nn.Module):
    """A Smooth InfoMax (or GIM / CPC) speech encoder built from an ``EncoderConfig``.

    ``stages[m]`` is module ``m``. ``forward`` is the training pass (samples, detached module boundaries);
    ``extract`` is the inference pass. Sampling is always an explicit argument, never tied to ``self.training``.

    Example:
        >>> enc = SmoothInfoMaxEncoder.from_preset("sim").eval()
        >>> out = enc.extract(torch.randn(16000), sample_rate=16000)
        >>> out[0].mean.shape
        torch.Size([1, 800, 512])
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        stages, channels = [], config.in_channels
        for module_config, dim in zip(config.modules, config.output_dims(), strict=True):
            stages.append(EncoderModule(channels, module_config))
            channels = dim
        self.stages = nn.ModuleList(stages)
        self.geometries: tuple[FrameGeometry, ...] = tuple(module_geometries(config))
        self.name_or_path: str | None = None  # where from_pretrained found the model
        self.revision: str | None = None  # the Hub commit it was loaded from
        self.card: HubModelCard | None = None  # the model card it was loaded with (see save_pretrained)
        self._frozen: set[int] = set()  # modules excluded from training (see freeze)

    @property
    def _stage_list(self) -> Sequence[EncoderModule]:
        """``stages``, typed as what it holds (``nn.ModuleList`` types its items as plain modules)."""
        return cast("Sequence[EncoderModule]", self.stages)

    def freeze(self, modules: Sequence[int] | int | None = None) -> SmoothInfoMaxEncoder:
        """Stop training ``modules`` (default all): no gradients, and BatchNorm kept in eval mode even when the
        encoder is put in ``train()`` mode, so its running statistics never drift."""
        for index in self.resolve_modules(modules):
            self.stages[index].requires_grad_(False)
            self._frozen.add(index)
            self.stages[index].eval()
        return self

    def unfreeze(self, modules: Sequence[int] | int | None = None) -> SmoothInfoMaxEncoder:
        """Make ``modules`` (default all) trainable again; they follow ``train()``/``eval()`` as usual."""
        for index in self.resolve_modules(modules):
            self.stages[index].requires_grad_(True)
            self._frozen.discard(index)
            self.stages[index].train(self.training)
        return self

    def train(self, mode: bool = True) -> SmoothInfoMaxEncoder:
        super().train(mode)
        for index in getattr(self, "_frozen", ()):
            self.stages[index].eval()
        return self

    @classmethod
    def from_preset(cls, name: str) -> SmoothInfoMaxEncoder:
        """A randomly initialised encoder of a preset (``sim``, ``gim_sim_repo``, ``gim``, ``cpc``)."""
        return cls(preset(name))

    @property
    def num_modules(self) -> int:
        return len(self.stages)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def device(self) -> torch.device:
        """The device of the weights (all on one device; ``.to(device)`` moves them)."""
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point dtype of the weights."""
        return next(self.parameters()).dtype

    @property
    def output_dims(self) -> list[int]:
        return self.config.output_dims()

    # --- training ----------------------------------------------------------------------------------------------

    def forward(
        self, waveform: torch.Tensor, lengths: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> list[ModuleTrainOutput]:
        """Training pass, as the reference: Gaussian modules draw two samples (context and target) and hand the
        target sample, detached, to the next module; so no gradient crosses a module boundary.

        Args:
            waveform: ``(batch, samples)`` or ``(batch, 1, samples)`` float audio at ``sample_rate``.
            lengths: ``(batch,)`` valid samples (default: all).
            generator: source of the sampling noise (default: torch's global generator).
        """
        return train_outputs(self._stage_list, self.config, waveform, lengths, generator)

    # --- inference ---------------------------------------------------------------------------------------------

    def extract(
        self,
        wav: object,
        *,
        sample_rate: int | None = None,
        lengths: object | None = None,
        modules: Sequence[int] | int | None = None,
        sample: bool = False,
        generator: torch.Generator | None = None,
        logvar: bool = True,
        chunk_samples: int | None = None,
        piece_samples: int | None = None,
        layers: Sequence[int] | int | None = None,
    ) -> Extraction:
        """Per-module features of one clip or a batch.

        Args:
            wav: ``(samples,)``; ``(batch, samples)`` (always a batch, even ``(2, samples)``); ``(batch, channels,
                samples)``; or a list of ``(samples,)`` / ``(channels, samples)`` items. Channels are averaged.
                numpy or torch; float in [-1, 1], int16 (/ 2^15) or int32 (/ 2^31). Shapes that look like
                soundfile's ``(samples, channels)`` are refused: pass ``[audio.T]`` (docs/extract.md, "Inputs").
            sample_rate: rate of ``wav`` in Hz, 4000 to 384000; other rates than ``self.sample_rate`` (16 kHz) are
                resampled with torchaudio, item by item. ``None`` takes the audio to be at 16 kHz and warns
                (``inputs.SampleRateWarning``).
            lengths: ``(batch,)`` valid samples per row of a padded array (not for a list).
            modules: module indices to return (negative counts from the end); default all. Computation stops
                after the deepest one.
            sample: also draw a reparameterised sample per Gaussian module (means still flow between modules).
            generator: a seeded ``torch.Generator`` makes the samples reproducible.
            logvar: ``False`` skips the log-variance heads (about a tenth of the compute); ``logvar`` is then
                ``None`` in every module's features.
            chunk_samples: a single clip longer than this (in samples at 16 kHz) is computed in exact chunks of
                this size; ``None``: 4 s on a CPU in float32, 8 s in 16 bits, 30 s on a GPU.
            piece_samples: a batch with more padded audio than this (in samples at 16 kHz) runs its conv modules
                in groups of items of at most this size, then the GRU once over the batch; ``None``: 8 s on a CPU
                in float32, 16 s in 16 bits, 60 s on a GPU. Neither size changes the features (beyond float
                rounding), only speed and memory.
            layers: deprecated name of ``modules`` (``DeprecationWarning``), removed in the next release.

        Runs in the dtype of ``torch.autocast`` when it is on (e.g. bfloat16 on CPU), else in the model's dtype;
        a ``SlowDtypeWarning`` says when that is a 16-bit dtype this CPU has no fast path for. Any batch size is
        fine: long clips and large batches are computed in chunks and pieces (``inference/``), so activations
        stay small.

        Returns:
            An ``Extraction``: ``extraction[m]`` is module ``m``'s ``mean``/``logvar``/``sample`` ``(batch, frames,
            dim)``, valid frame ``lengths`` and frame geometry. Results for an item do not depend on the rest of
            the batch.
        """
        modules = renamed_keyword(modules, layers, "modules", "layers")
        request = Request(tuple(self.resolve_modules(modules)), sample, generator, logvar)
        rate = self.sample_rate if sample_rate is None else check_sample_rate(sample_rate)
        parameter = next(self.parameters())
        sizes = Sizes.resolve(parameter.device.type, compute_dtype(parameter), self.sample_rate, chunk_samples,
                              piece_samples)
        if slow := slow_dtype_reason(compute_dtype(parameter), parameter.device):
            warnings.warn(slow, SlowDtypeWarning, stacklevel=2)
        audio = prepare_audio(wav, rate, lengths, self.sample_rate, parameter.dtype, parameter.device)
        if sample_rate is None:
            warn_assumed_rate(self.sample_rate, stacklevel=2)
        with torch.inference_mode():
            features = self._inference_features(audio.waveform, audio.lengths, request, sizes)
        if not logvar:
            features = [dataclasses.replace(f, logvar=None) for f in features]
        return Extraction(tuple(features), self.sample_rate, rate, audio.lengths, audio.resampler)

    def _inference_features(self, waveform: torch.Tensor, lengths: torch.Tensor, request: Request,
                            sizes: Sizes) -> list[ModuleFeatures]:
        """``extract``'s features of ``waveform (batch, samples)``: the modules' own pass while any BatchNorm is in
        training mode (batch statistics), else the folded fast path."""
        if any(m.training for m in self.modules() if isinstance(m, nn.BatchNorm1d)):
            return differentiable_features(self._stage_list, self.config, self.geometries, waveform, lengths, request)
        return folded_features(self._folded_encoder(), waveform, lengths, request, sizes)

    def extract_chunks(
        self,
        waveform: torch.Tensor,
        *,
        modules: Sequence[int] | int | None = None,
        chunk_samples: int | None = None,
        autocast_dtype: torch.dtype | None = None,
        logvar: bool = True,
    ) -> Iterator[dict[int, FrameRows]]:
        """Features of one long clip, chunk by chunk in bounded memory (what ``sim-extract`` writes as it goes).

        Args:
            waveform: ``(samples,)`` mono float audio at ``sample_rate`` (16 kHz); it may stay on the CPU, each
                chunk is moved to the model's device.
            modules: module indices (negative counts from the end); default all.
            chunk_samples: output per chunk, in input samples; ``None``: ``extract``'s default for this device and
                dtype.
            autocast_dtype: compute each chunk under ``torch.autocast`` in this dtype (e.g. ``torch.bfloat16``);
                ``None``: in the model's dtype.
            logvar: ``False`` skips the log-variance heads (``FrameRows.logvar`` is then ``None``).

        Returns:
            An iterator that yields, per chunk, ``{module: FrameRows}`` with that chunk's valid frames ``(rows,
            dim)``; concatenated over the chunks they equal ``extract(waveform)`` (up to float rounding).

        Raises:
            ValueError: a conv module among ``modules`` follows a GRU, so the clip cannot be chunked
                (``inference.supports_chunking``); use ``extract``.
        """
        wanted = self.resolve_modules(modules)
        if not supports_chunking(self.config, max(wanted)):
            raise ValueError(f"modules {wanted} cannot be computed in chunks (a conv module follows a GRU); "
                             "use extract")
        device = next(self.parameters()).device
        autocast = (contextlib.nullcontext() if autocast_dtype is None
                    else torch.autocast(device.type, dtype=autocast_dtype))
        with torch.inference_mode(), autocast:
            model = self._folded_encoder()
        sizes = Sizes.resolve(device.type, model.dtype, self.sample_rate, chunk_samples)
        return iter_chunks(model, waveform, wanted, sizes.chunk_samples, autocast_dtype, logvar)

    def forward_features(
        self,
        waveform: torch.Tensor,
        lengths: torch.Tensor | None = None,
        *,
        modules: Sequence[int] | int | None = None,
        sample: bool = False,
        generator: torch.Generator | None = None,
        layers: Sequence[int] | int | None = None,
    ) -> list[ModuleFeatures]:
        """The differentiable path behind ``extract``, for fine-tuning under a downstream head.

        Args:
            waveform: ``(batch, samples)`` float tensor at ``sample_rate``, on the model's device and dtype.
            lengths: ``(batch,)`` valid samples (default: all). Other arguments as in ``extract``.

        Returns:
            One ``ModuleFeatures`` per requested module, exactly as ``extract`` computes them, with gradients.
        """
        modules = renamed_keyword(modules, layers, "modules", "layers")
        request = Request(tuple(self.resolve_modules(modules)), sample, generator)
        return differentiable_features(self._stage_list, self.config, self.geometries, waveform, lengths, request)

    def inference_modules(self) -> list[FoldedModule]:
        """Per module, its ``inference.FoldedModule`` for the current dtype: the autocast dtype when autocast
        is on, else the model's. Folded from the current parameters; needs every BatchNorm in eval mode."""
        parameter = next(self.parameters())
        return [fold_module(stage, compute_dtype(parameter), parameter.device) for stage in self._stage_list]

    def _folded_encoder(self) -> FoldedEncoder:
        """This encoder as the folded paths read it, for the current compute dtype and device."""
        parameter = next(self.parameters())
        return FoldedEncoder(self.config, self.geometries, tuple(self.inference_modules()), compute_dtype(parameter),
                             parameter.device)

    def resolve_modules(self, modules: Sequence[int] | int | None) -> list[int]:
        """Sorted, de-duplicated module indices for ``modules`` (``None``: all; negative counts from the end)."""
        if modules is None:
            return list(range(self.num_modules))
        if isinstance(modules, int):
            modules = [modules]
        count, resolved = self.num_modules, set()
        for module in modules:
            if not isinstance(module, int) or not -count <= module < count:
                raise ValueError(f"modules must be module indices in [{-count}, {count - 1}], got {module!r}")
            resolved.add(module % count)
        if not resolved:
            raise ValueError("modules is empty")
        return sorted(resolved)

    def resolve_layers(self, layers: Sequence[int] | int | None) -> list[int]:
        """Deprecated alias of ``resolve_modules``, removed in the next release."""
        warnings.warn("resolve_layers is deprecated and will be removed in the next release; use resolve_modules",
                      DeprecationWarning, stacklevel=2)
        return self.resolve_modules(layers)

    # --- persistence (see hub.py) ------------------------------------------------------------------------------

    def save_pretrained(
        self, save_directory: str | Path, card: ModelCard | HubModelCard | None = None,
        weights_dtype: torch.dtype | None = None, *, model_card: ModelCard | None = None,
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card to ``save_directory``
        (floating-point weights stored as ``weights_dtype`` when given, e.g. ``torch.float16``); returns the folder.

        The card is ``card``: a ``smooth_infomax.card.ModelCard`` (training data, results, notes) is rendered with
        the config, a ``huggingface_hub.ModelCard`` is written as it is. Without one, the card the model was loaded
        with (``self.card``) is written again, every section unchanged, or else a new card. Either way its usage
        line loads ``save_directory``. ``model_card`` is the deprecated old name of ``card``.
        """
        from .hub import save_pretrained

        card = renamed_keyword(card, model_card, "card", "model_card")
        return save_pretrained(self, save_directory, card, weights_dtype)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path | None = None,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> SmoothInfoMaxEncoder:
        """Load a model from a local folder, a Hugging Face Hub repo id, or the name of a model shipped in the
        package (``None``: the default shipped model, ``hub.DEFAULT_MODEL``); returned in ``eval()`` mode. Only
        safetensors weights are read, and loading is strict."""
        from .hub import DEFAULT_MODEL, from_pretrained

        name = DEFAULT_MODEL if name_or_path is None else name_or_path
        return from_pretrained(cls, name, revision, cache_dir, local_files_only, token, device, dtype)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str = "Upload smooth-infomax model",
        card: ModelCard | HubModelCard | None = None,
        model_card: ModelCard | None = None,
    ) -> str:
        """Upload the ``save_pretrained`` files to a Hub repo; returns the URL of the commit.

        Args:
            repo_id: ``"org/name"``; the repo is created if it does not exist.
            revision: the branch to commit to (created from the default branch if needed); default: ``main``.
            private: visibility of a repo this call creates (an existing repo keeps its own); ``None``: the Hub's
                default (public).
            token: a Hub token with write access; ``None``: the saved login or ``HF_TOKEN``.
            commit_message: the commit's title.
            card: the model card, as in ``save_pretrained`` (default: the card the model was loaded with, else a
                new one); its usage line loads ``repo_id`` at ``revision``.
            model_card: deprecated old name of ``card``.
        """
        from .hub import push_to_hub

        card = renamed_keyword(card, model_card, "card", "model_card")
        return push_to_hub(self, repo_id, revision=revision, private=private, token=token,
                           commit_message=commit_message, card=card)
