"""Shared helpers and fixtures for the ``sim-extract`` tests (no tests here).

Test modules import the fixtures as ``from test_cli_common import tiny_model_fixture`` (pytest registers them
under their ``name``: ``tiny_model``, ``sim_model``).

Models are saved with ``save_pretrained`` into temporary folders: the real ``sim`` preset (for equality with
``extract``) and a tiny SIM-shaped model (16 channels) that keeps the other tests fast.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from smooth_infomax import ConvLayerConfig, EncoderConfig, ModuleConfig, SmoothInfoMaxEncoder
from smooth_infomax.cli import main
from smooth_infomax.extraction import load_features

AUDIO_SUFFIXES = (".safetensors", ".npz", ".features")


def tiny_config(channels: int = 16, hidden: int = 8) -> EncoderConfig:
    """The ``sim`` layout (3 Gaussian conv modules + a GRU module) with few channels."""
    strides = [(10, 5, 2), (8, 4, 2), (4, 2, 2), (4, 2, 2), (4, 2, 1)]
    layers = [ConvLayerConfig(k, s, p, channels=channels) for k, s, p in strides]
    groups = (layers[0:2], layers[2:4], layers[4:5])
    conv = tuple(ModuleConfig(conv_layers=tuple(g), batch_norm=True, head="gaussian") for g in groups)
    return EncoderConfig(modules=conv + (ModuleConfig(gru_hidden_size=hidden),))


def randomise_batch_norm(encoder: SmoothInfoMaxEncoder, seed: int = 0) -> SmoothInfoMaxEncoder:
    generator = torch.Generator().manual_seed(seed)
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) * 1.5 + 0.5)
    return encoder


def save_model(folder: Path, config: EncoderConfig | str, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    encoder = SmoothInfoMaxEncoder.from_preset(config) if isinstance(config, str) else SmoothInfoMaxEncoder(config)
    randomise_batch_norm(encoder.eval(), seed).save_pretrained(folder)
    return folder


@pytest.fixture(name="no_hang")
def no_hang_fixture():
    """Fail instead of hanging: a SIGALRM after 60 s raises ``TimeoutError`` in the test."""
    def expire(*_):
        raise TimeoutError("took more than 60 s; a walk, read or subprocess probably hangs")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session", name="tiny_model")
def tiny_model_fixture(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("tiny-model"), tiny_config())


@pytest.fixture(scope="session", name="sim_model")
def sim_model_fixture(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("sim-model"), "sim")


def write_audio(path: Path, seconds: float, rate: int = 16000, channels: int = 1, subtype: str | None = None,
                seed: int = 0) -> Path:
    """A random-noise file (amplitude about 0.1) of ``seconds`` at ``rate``."""
    rng = np.random.default_rng(seed)
    frames = max(1, round(seconds * rate))
    data = (rng.standard_normal((frames, channels)) * 0.1).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data if channels > 1 else data[:, 0], rate, subtype=subtype)
    return path


def run_cli(args: list, env: dict | None = None):
    """Run ``sim-extract`` in-process; returns click's ``Result`` (``exit_code``, ``output``, ``stderr``)."""
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def reference(encoder: SmoothInfoMaxEncoder, path: Path, modules=None) -> dict[str, np.ndarray]:
    """``encoder.extract`` of one file alone: ``module{m}.mean``/``.logvar`` ``(frames, dim)``."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    out = encoder.extract([torch.from_numpy(data.T.copy())], sample_rate=rate, modules=modules)
    arrays = {}
    for features in out:
        arrays[f"module{features.index}.mean"] = features.unpad(0).numpy()
        if features.logvar is not None:
            arrays[f"module{features.index}.logvar"] = features.unpad(0, "logvar").numpy()
    return arrays


def output_files(out_dir: Path) -> dict[str, Path]:
    """Outputs under ``out_dir`` by relative posix path (logs and temporary files excluded)."""
    found = {}
    for root, dirs, files in os.walk(out_dir):
        for name in dirs + files:
            if name.endswith(AUDIO_SUFFIXES) and not name.startswith("."):
                path = Path(root) / name
                found[path.relative_to(out_dir).as_posix()] = path
        dirs[:] = [d for d in dirs if not d.endswith(".features")]
    return found


def assert_same_outputs(a: Path, b: Path, atol: float = 1e-5) -> None:
    """Two output trees hold the same files with the same arrays (and the same fingerprints)."""
    files_a, files_b = output_files(a), output_files(b)
    assert sorted(files_a) == sorted(files_b)
    for name, path in files_a.items():
        arrays_a, meta_a = load_features(path)
        arrays_b, meta_b = load_features(files_b[name])
        assert sorted(arrays_a) == sorted(arrays_b)
        assert meta_a["fingerprint"] == meta_b["fingerprint"]
        for key in arrays_a:
            np.testing.assert_allclose(arrays_a[key], arrays_b[key], atol=atol, rtol=0, err_msg=f"{name} {key}")
