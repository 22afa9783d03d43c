"""``SmoothInfoMaxEncoder``: the stack of gradient-isolated modules, its training forward pass and ``extract``."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .config import EncoderConfig, preset
from .geometry import FrameGeometry, module_geometries, output_lengths
from .inference import (FoldedCache, SlowDtypeWarning, compute_dtype, default_sizes_s, mask_tail_, run_gru,
                        slow_dtype_reason)
from .inputs import check_sample_rate, prepare_audio, warn_assumed_rate
from .layers import EncoderModule, gaussian_sample, mask_frames
from .outputs import Extraction, ModuleFeatures, ModuleTrainOutput
from .pieces import conv_modules_in_pieces


def extract_chunk_samples(device_type: str, dtype: torch.dtype = torch.float32) -> int:
    """``extract`` computes a single clip longer than this in chunks of this size (16 kHz samples)."""
    return int(default_sizes_s(device_type, dtype)[0] * 16000)


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
        for module_config, dim in zip(config.modules, config.output_dims()):
            stages.append(EncoderModule(channels, module_config))
            channels = dim
        self.stages = nn.ModuleList(stages)
        self.geometries: tuple[FrameGeometry, ...] = tuple(module_geometries(config))
        self.name_or_path: str | None = None  # where from_pretrained found the model
        self.revision: str | None = None  # the Hub commit it was loaded from
        self._frozen: set[int] = set()  # modules excluded from training (see freeze)
        self._folded = FoldedCache()  # inference weights per dtype and device (see inference.py)

    def freeze(self, modules: Sequence[int] | int | None = None) -> SmoothInfoMaxEncoder:
        """Stop training ``modules`` (default all): no gradients, and BatchNorm kept in eval mode even when the
        encoder is put in ``train()`` mode, so its running statistics never drift."""
        for index in self.resolve_layers(modules):
            self.stages[index].requires_grad_(False)
            self._frozen.add(index)
            self.stages[index].eval()
        return self

    def unfreeze(self, modules: Sequence[int] | int | None = None) -> SmoothInfoMaxEncoder:
        """Make ``modules`` (default all) trainable again; they follow ``train()``/``eval()`` as usual."""
        for index in self.resolve_layers(modules):
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
        x = waveform if waveform.ndim == 3 else waveform.unsqueeze(1)
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[-1], dtype=torch.long, device=x.device)
        x = mask_frames(x * self.config.input_gain + self.config.input_offset, lengths)
        outputs = []
        for stage in self.stages:
            output = self._train_stage(stage, x, lengths, generator)
            outputs.append(output)
            x, lengths = output.target.transpose(1, 2).detach(), output.lengths
        return outputs

    def _train_stage(
        self, stage: EncoderModule, x: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None
    ) -> ModuleTrainOutput:
        mean, logvar, lengths = stage.encode(x, lengths) if stage.convs else (x, None, lengths)
        if logvar is not None:
            context = mask_frames(gaussian_sample(mean, logvar, generator), lengths)
            target = mask_frames(gaussian_sample(mean, logvar, generator), lengths)
        else:
            context = target = mean
        if stage.gru is not None:
            context, _ = stage.recur(target, lengths)
            mean = context
        as_btd = lambda t: None if t is None else t.transpose(1, 2)  # noqa: E731
        return ModuleTrainOutput(as_btd(context), as_btd(target), as_btd(mean), as_btd(logvar), lengths)

    # --- inference ---------------------------------------------------------------------------------------------

    def extract(
        self,
        wav: object,
        sample_rate: int | None = None,
        lengths: object | None = None,
        layers: Sequence[int] | int | None = None,
        sample: bool = False,
        generator: torch.Generator | None = None,
        logvar: bool = True,
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
            layers: module indices to return (negative counts from the end); default all. Computation stops
                after the deepest one.
            sample: also draw a reparameterised sample per Gaussian module (means still flow between modules).
            generator: a seeded ``torch.Generator`` makes the samples reproducible.
            logvar: ``False`` skips the log-variance heads (about a tenth of the compute); ``logvar`` is then
                ``None`` in every module's features.

        Runs in the dtype of ``torch.autocast`` when it is on (e.g. bfloat16 on CPU), else in the model's dtype;
        a ``SlowDtypeWarning`` says when that is a 16-bit dtype this CPU has no fast path for.
        Any batch size is fine: a long clip is computed in exact chunks and a large batch in pieces (on a CPU 4 s
        and 8 s in float32, 8 s and 16 s in 16 bits; 30 s and 60 s on a GPU; ``pieces.py``): small activations.

        Returns:
            An ``Extraction``: for each requested module ``mean``/``logvar``/``sample`` ``(batch, frames, dim)``,
            valid frame ``lengths`` and frame geometry. Results for an item do not depend on the rest of the batch.
        """
        rate = self.sample_rate if sample_rate is None else check_sample_rate(sample_rate)
        parameter = next(self.parameters())
        if slow := slow_dtype_reason(compute_dtype(parameter), parameter.device):
            warnings.warn(slow, SlowDtypeWarning, stacklevel=2)
        audio = prepare_audio(wav, rate, lengths, self.sample_rate, parameter.dtype, parameter.device)
        if sample_rate is None:
            warn_assumed_rate(self.sample_rate, stacklevel=2)
        with torch.inference_mode():
            if any(m.training for m in self.modules() if isinstance(m, nn.BatchNorm1d)):
                features = self.forward_features(audio.waveform, audio.lengths, layers, sample, generator)
            elif self._chunkable(audio.waveform, layers):
                features = self._chunked_features(audio.waveform[0], layers, sample, generator, logvar)
            else:
                features = self._folded_features(audio.waveform, audio.lengths, layers, sample, generator, logvar)
        if not logvar:
            features = [dataclasses.replace(f, logvar=None) for f in features]
        return Extraction(tuple(features), self.sample_rate, rate, audio.lengths, audio.resampler)

    def forward_features(
        self,
        waveform: torch.Tensor,
        lengths: torch.Tensor | None = None,
        layers: Sequence[int] | int | None = None,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> list[ModuleFeatures]:
        """The differentiable path behind ``extract``, for fine-tuning under a downstream head.

        Args:
            waveform: ``(batch, samples)`` float tensor at ``sample_rate``, on the model's device and dtype.
            lengths: ``(batch,)`` valid samples (default: all). Other arguments as in ``extract``.

        Returns:
            One ``ModuleFeatures`` per requested module, exactly as ``extract`` computes them, with gradients.
        """
        wanted = self.resolve_layers(layers)
        if lengths is None:
            lengths = torch.full((waveform.shape[0],), waveform.shape[-1], dtype=torch.long, device=waveform.device)
        x = waveform.unsqueeze(1)
        if x.shape[-1] < self._min_input_samples:
            x = nn.functional.pad(x, (0, self._min_input_samples - x.shape[-1]))
        x = mask_frames(x * self.config.input_gain + self.config.input_offset, lengths)
        features = []
        for index, stage in enumerate(self.stages[: max(wanted) + 1]):
            mean, logvar, lengths = stage.encode(x, lengths) if stage.convs else (x, None, lengths)
            if stage.gru is not None:
                mean, _ = stage.recur(mean, lengths)
            if index in wanted:
                features.append(self._features(index, mean, logvar, lengths, sample, generator))
            x = mean
        return features

    def inference_modules(self) -> list:
        """Per module, its ``inference.FoldedModule`` for the current dtype: the autocast dtype when autocast
        is on, else the model's. Needs every BatchNorm in eval mode."""
        parameter = next(self.parameters())
        return self._folded.get(self, compute_dtype(parameter), parameter.device)

    def _chunkable(self, waveform: torch.Tensor, layers) -> bool:
        """One clip longer than a chunk (``_sizes_samples``), through modules that can be computed in chunks."""
        from .extraction.chunking import supports_chunking

        deepest = max(self.resolve_layers(layers))
        return (waveform.shape[0] == 1 and waveform.shape[-1] > self._sizes_samples()[0]
                and supports_chunking(self.config, deepest))

    def _sizes_samples(self) -> tuple[int, int]:
        """``default_sizes_s`` for this model's device and compute dtype, in samples: (chunk, piece)."""
        parameter = next(self.parameters())
        chunk_s, piece_s = default_sizes_s(parameter.device.type, compute_dtype(parameter))
        return int(chunk_s * self.sample_rate), int(piece_s * self.sample_rate)

    def _chunked_features(self, waveform, layers, sample, generator, logvar) -> list[ModuleFeatures]:
        """``_folded_features`` of one long clip ``(samples,)``, computed chunk by chunk (exactly equal; the
        activations of the first layers stay small instead of growing with the clip). Each chunk's rows are copied
        into the outputs as they come, so a chunk's memory is reused by the next."""
        from .extraction.chunking import iter_chunks

        wanted = self.resolve_layers(layers)
        lengths = output_lengths(self.config, torch.tensor([waveform.shape[0]]))
        outputs: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}  # module -> (mean, logvar) (1, frames, dim)
        for rows in iter_chunks(self, waveform, wanted, self._sizes_samples()[0], logvar=logvar or sample):
            for m, frame_rows in rows.items():
                if m not in outputs:
                    empty = lambda t: None if t is None else t.new_empty((1, int(lengths[m][0]), t.shape[1]))  # noqa: E731
                    outputs[m] = (empty(frame_rows.mean), empty(frame_rows.logvar))
                stop = frame_rows.start_frame + frame_rows.mean.shape[0]
                for output, part in zip(outputs[m], (frame_rows.mean, frame_rows.logvar)):
                    if output is not None:
                        output[0, frame_rows.start_frame: stop] = part
        return [self._features(m, *outputs[m], lengths[m], sample, generator, channels_last=True) for m in wanted]

    def _folded_features(self, waveform, lengths, layers, sample, generator, logvar) -> list[ModuleFeatures]:
        """``forward_features`` for an encoder whose BatchNorms are in eval mode, through ``inference.py``; a
        batch larger than a piece (``default_sizes_s``) runs its conv modules in pieces (``pieces.py``)."""
        wanted = self.resolve_layers(layers)
        waveform, lengths = self._padded_to_min_input(waveform), lengths.cpu()
        convs = self._leading_conv_modules(max(wanted))
        piece_samples = self._sizes_samples()[1]
        if waveform.shape[0] == 1 or waveform.numel() <= piece_samples or not convs:
            return self._folded_pass(waveform, lengths, wanted, sample, generator, logvar)
        parts = conv_modules_in_pieces(self, waveform, lengths, convs, logvar or sample, piece_samples)
        features = [self._features(p.index, p.mean, p.logvar, p.lengths, sample, generator, channels_last=True)
                    for p in parts if p.index in wanted]
        return features + self._folded_stages(parts[-1].mean, parts[-1].lengths, len(parts), wanted, sample,
                                              generator, logvar)

    def _folded_pass(self, waveform, lengths, layers, sample, generator, logvar) -> list[ModuleFeatures]:
        """``_folded_features`` of ``waveform (batch, samples)`` in one pass, never in pieces (``pieces.py`` computes
        each piece with this)."""
        wanted = self.resolve_layers(layers)
        waveform, lengths = self._padded_to_min_input(waveform), lengths.cpu()
        parameter = next(self.parameters())
        x = (waveform * self.config.input_gain + self.config.input_offset).to(compute_dtype(parameter))
        x = mask_tail_(x.unsqueeze(-1), lengths)  # (batch, samples, 1)
        return self._folded_stages(x, lengths, 0, wanted, sample, generator, logvar)

    def _folded_stages(self, x, lengths, first, wanted, sample, generator, logvar) -> list[ModuleFeatures]:
        """Modules ``first .. max(wanted)`` on ``x (batch, frames, channels)``, the output of module ``first - 1``
        (the scaled waveform ``(batch, samples, 1)`` when ``first`` is 0)."""
        folded = self.inference_modules()
        features = []
        for index in range(first, max(wanted) + 1):
            stage, mean, variance = self.stages[index], x, None
            if stage.convs:
                mean, variance, lengths = folded[index].encode(x, lengths, want_logvar=logvar or sample)
            if stage.gru is not None:
                mean, _ = run_gru(stage, mean, lengths, folded=folded[index])
            if index in wanted:
                features.append(self._features(index, mean, variance, lengths, sample, generator, channels_last=True))
            x = mean
        return features

    def _padded_to_min_input(self, waveform: torch.Tensor) -> torch.Tensor:
        """``waveform (..., samples)`` zero-padded to at least ``_min_input_samples``."""
        if waveform.shape[-1] >= self._min_input_samples:
            return waveform
        return nn.functional.pad(waveform, (0, self._min_input_samples - waveform.shape[-1]))

    def _leading_conv_modules(self, deepest: int) -> list[int]:
        """Modules ``0 .. k`` (``k <= deepest``) that have convs and no GRU: those a batch can compute in pieces."""
        leading = []
        for index, stage in enumerate(self.stages[: deepest + 1]):
            if not stage.convs or stage.gru is not None:
                break
            leading.append(index)
        return leading

    def _features(self, index, mean, logvar, lengths, sample, generator, channels_last=False) -> ModuleFeatures:
        if not channels_last:
            as_btd = lambda t: None if t is None else t.transpose(1, 2).contiguous()  # noqa: E731
            mean, logvar = as_btd(mean), as_btd(logvar)
        drawn = mean
        if sample and logvar is not None:
            drawn = gaussian_sample(mean, logvar, generator)
            drawn = mask_tail_(drawn, lengths.cpu())
        return ModuleFeatures(index, mean, logvar, drawn, lengths.cpu(), self.geometries[index])

    def resolve_layers(self, layers: Sequence[int] | int | None) -> list[int]:
        """Sorted, de-duplicated module indices for ``layers`` (``None``: all; negative counts from the end)."""
        if layers is None:
            return list(range(self.num_modules))
        if isinstance(layers, int):
            layers = [layers]
        resolved = set()
        for layer in layers:
            if not isinstance(layer, int) or not -self.num_modules <= layer < self.num_modules:
                raise ValueError(f"layers must be module indices in [{-self.num_modules}, {self.num_modules - 1}], got {layer!r}")
            resolved.add(layer % self.num_modules)
        if not resolved:
            raise ValueError("layers is empty")
        return sorted(resolved)

    @property
    def _min_input_samples(self) -> int:
        """Fewest samples for which every conv layer yields at least one (possibly masked) frame."""
        needed = 1
        for module in reversed(self.config.modules):
            for layer in reversed(module.conv_layers):
                needed = max(1, (needed - 1) * layer.stride + layer.kernel_size - 2 * layer.padding)
        return needed

    # --- persistence (see hub.py) ------------------------------------------------------------------------------

    def save_pretrained(
        self, save_directory: str | Path, model_card: object | None = None, weights_dtype: torch.dtype | None = None
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card to ``save_directory``
        (floating-point weights stored as ``weights_dtype`` when given, e.g. ``torch.float16``)."""
        from .hub import save_pretrained

        return save_pretrained(self, save_directory, model_card, weights_dtype)

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

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        """Upload the ``save_pretrained`` files to a Hub repo (created if needed); returns the commit URL."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)
