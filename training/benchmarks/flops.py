"""Multiply-accumulate counts of an encoder config, as FLOPs (2 per multiply-accumulate) per second of audio."""

from __future__ import annotations

from smooth_infomax.config import EncoderConfig


def flops_per_audio_second(config: EncoderConfig, logvar: bool = True) -> dict[str, float]:
    """FLOPs per second of 16 kHz audio: per conv layer, head and GRU, and ``total``.

    Conv layer: ``2 * frames * out * in * kernel``; 1x1 heads ``2 * frames * dim * dim`` each; GRU: the input and
    recurrent matmuls of its three gates, ``2 * frames * 3 * hidden * (in + hidden)``. Biases, BatchNorm and
    activations are left out (they are memory-bound, not FLOP-bound).
    """
    rate, channels, counts = float(config.sample_rate), config.in_channels, {}
    for m, module in enumerate(config.modules):
        for j, layer in enumerate(module.conv_layers):
            rate /= layer.stride
            counts[f"module{m}.conv{j}"] = 2 * rate * layer.channels * channels * layer.kernel_size
            channels = layer.channels
        if module.head != "none":
            heads = 2 if module.is_gaussian and logvar else 1
            counts[f"module{m}.head"] = 2 * rate * channels * channels * heads
        if module.gru_hidden_size:
            hidden = module.gru_hidden_size
            counts[f"module{m}.gru"] = 2 * rate * 3 * hidden * (channels + hidden)
            channels = hidden
    counts["total"] = sum(counts.values())
    return counts
