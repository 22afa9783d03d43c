"""``smooth_infomax.hf_datasets`` with the real ``datasets`` package, offline: ``add_features`` on an ``Audio``
column equals ``extract``, and ``sim-extract`` outputs load as a ``Dataset`` equal to ``load_features``."""

import subprocess
import sys
from importlib.util import find_spec

import numpy as np
import pytest
import soundfile as sf
import torch

from smooth_infomax import SmoothInfoMaxEncoder
from test_cli_common import randomise_batch_norm, tiny_config

needs_datasets = pytest.mark.skipif(
    find_spec("datasets") is None,
    reason='the optional `datasets` package is not installed (pip install "smooth-infomax[datasets]")')

RATE = 22050
SECONDS = {"a.flac": 0.31, "b.wav": 0.55, "c.flac": 0.17}  # unequal lengths, one batch


def _write(folder, name, seconds, rate=RATE, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    data = (rng.standard_normal((round(seconds * rate), channels)) * 0.1).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(str(folder / name), data if channels > 1 else data[:, 0], rate)
    return folder / name


@pytest.fixture(scope="module")
def encoder():
    """A SIM-shaped encoder with few channels (3 Gaussian conv modules + a GRU), BatchNorm statistics randomised."""
    torch.manual_seed(0)
    return randomise_batch_norm(SmoothInfoMaxEncoder(tiny_config()).eval())


@pytest.mark.slow
def test_importing_the_package_and_helpers_does_not_import_datasets():
    code = ("import sys, smooth_infomax, smooth_infomax.hf_datasets, smooth_infomax.batching; "
            "assert 'datasets' not in sys.modules, 'datasets was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_datasets_the_error_names_the_extra(monkeypatch, encoder):
    from smooth_infomax import hf_datasets

    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "smooth-infomax\[datasets\]"'):
        hf_datasets.add_features(object(), encoder)
    with pytest.raises(ImportError, match=r'pip install "smooth-infomax\[datasets\]"'):
        hf_datasets.load_features_dataset("anywhere")


@pytest.mark.slow
@needs_datasets
def test_add_features_on_an_audio_column_equals_extract(tmp_path, encoder):
    from datasets import Audio, Dataset

    from smooth_infomax.hf_datasets import add_features

    paths = [_write(tmp_path, name, seconds, seed=i) for i, (name, seconds) in enumerate(SECONDS.items())]
    dataset = Dataset.from_dict({"audio": [str(p) for p in paths], "label": [0, 1, 2]}).cast_column("audio", Audio())
    mapped = add_features(dataset, encoder, modules=[0, 2, 3], what=("mean", "logvar"), batch_size=3)
    assert mapped.features["audio"] == Audio()  # the column is given back as it was
    columns = ["module0.mean", "module0.logvar", "module2.mean", "module2.logvar", "module3.mean"]
    assert [c for c in mapped.column_names if c.startswith("module")] == columns  # no logvar for the GRU
    rows = mapped.select_columns([*columns, "label"]).with_format("numpy")
    clips = [sf.read(str(p), dtype="float32", always_2d=True)[0].T for p in paths]
    expected = encoder.extract(clips, sample_rate=RATE, modules=[0, 2, 3])
    for i in range(len(paths)):
        assert rows[i]["label"] == i
        for column in columns:
            module, what = column[len("module"):].split(".")
            want = expected[int(module)].unpad(i, what).numpy()
            assert rows[i][column].shape == want.shape  # valid frames only
            np.testing.assert_allclose(rows[i][column], want, atol=1e-5, rtol=0, err_msg=f"row {i} {column}")


@needs_datasets
def test_embedded_bytes_arrays_and_dataset_dicts(tmp_path, encoder):
    from datasets import Audio, Dataset, DatasetDict

    from smooth_infomax.hf_datasets import ExtractFeatures, add_features

    stereo = _write(tmp_path, "stereo.flac", 0.3, rate=44100, channels=2, seed=5)
    embedded = {"bytes": stereo.read_bytes(), "path": "stereo.flac"}  # as parquet datasets on the Hub store audio
    splits = DatasetDict({"test": Dataset.from_dict({"audio": [embedded]}).cast_column("audio", Audio())})
    mapped = add_features(splits, encoder, modules=2, remove_columns="audio")
    assert mapped["test"].column_names == ["module2.mean"]
    audio = sf.read(str(stereo), dtype="float32", always_2d=True)[0].T
    want = encoder.extract([audio], sample_rate=44100, modules=2)[2].unpad(0).numpy()
    np.testing.assert_allclose(mapped["test"].with_format("numpy")[0]["module2.mean"], want, atol=1e-5, rtol=0)
    decoded = ExtractFeatures(encoder, modules=2)({"audio": [{"array": audio, "sampling_rate": 44100}]})
    np.testing.assert_allclose(decoded["module2.mean"][0], want, atol=1e-5, rtol=0)


@needs_datasets
def test_add_features_refusals(tmp_path, encoder):
    from datasets import Dataset

    from smooth_infomax.hf_datasets import ExtractFeatures, add_features

    with pytest.raises(ValueError, match="no column 'audio'"):
        add_features(Dataset.from_dict({"speech": ["x.wav"]}), encoder)
    with pytest.raises(ValueError, match="what must be"):
        ExtractFeatures(encoder, what=("sample",))
    with pytest.raises(ValueError, match="cannot decode audio with soundfile"):
        ExtractFeatures(encoder)({"audio": [{"bytes": b"not audio", "path": None}]})
    try:
        encoder.train()
        with pytest.raises(ValueError, match=r"encoder.eval\(\)"):
            ExtractFeatures(encoder)({"audio": [{"array": np.zeros(800, np.float32), "sampling_rate": 16000}]})
    finally:
        encoder.eval()


@needs_datasets
@pytest.mark.parametrize("fmt, dtype", [("safetensors", "float32"), ("npy", "float16")])
def test_sim_extract_outputs_load_as_a_dataset(tmp_path, fmt, dtype):
    from smooth_infomax.extraction import load_features
    from smooth_infomax.hf_datasets import load_features_dataset
    from test_cli_common import run_cli, save_model, tiny_config

    model = save_model(tmp_path / "model", tiny_config())
    for i, (name, seconds) in enumerate({"spk1/a.flac": 0.3, "spk1/b.flac": 0.45, "c.flac": 0.2}.items()):
        _write(tmp_path / "in" / name.rpartition("/")[0], name.rpartition("/")[2], seconds, channels=1 + i % 2, seed=i)
    out = tmp_path / "out"
    result = run_cli([tmp_path / "in", out, "--model", model, "--what", "mean,logvar", "--format", fmt,
                      "--dtype", dtype, "--num-workers", 0, "--quiet"])
    assert result.exit_code == 0, result.output
    dataset = load_features_dataset(out, cache_dir=str(tmp_path / "cache"))
    suffix = {"safetensors": ".safetensors", "npy": ".features"}[fmt]
    assert dataset["source"] == ["c.flac", "spk1/a.flac", "spk1/b.flac"]
    assert dataset["output"] == [f"{s}{suffix}" for s in dataset["source"]]
    rows = dataset.with_format("numpy")
    for row in rows:
        arrays, _ = load_features(out / row["output"])
        assert sorted(arrays) == sorted(k for k in row if k.startswith("module"))
        for key, array in arrays.items():
            assert array.dtype == np.dtype(dtype) and row[key].shape == array.shape
            np.testing.assert_array_equal(row[key], array.astype(np.float32), err_msg=f"{row['output']} {key}")
    only = load_features_dataset(out, keys=["module2.mean"], cache_dir=str(tmp_path / "cache"))
    assert only.column_names == ["source", "output", "module2.mean"]
    (out / "stray.wav.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="several formats"):
        load_features_dataset(out)
    with pytest.raises(FileNotFoundError, match="no sim-extract outputs"):
        load_features_dataset(tmp_path / "in")
