"""Run by .ci/run against the built wheel installed in a fresh virtual environment (SIM_TEST_WHEEL=1): the package
imported must be the installed one, with its shipped model, that model's decoders and the example audio inside it."""

import os
from pathlib import Path

import smooth_infomax
from smooth_infomax.examples import example_files
from smooth_infomax.hub import DEFAULT_MODEL, shipped_models

REPO = Path(__file__).resolve().parents[1]


def test_the_package_under_test_is_the_expected_one():
    """The source checkout in the main run; the installed wheel in .ci/run's wheel stage (SIM_TEST_WHEEL=1)."""
    package = Path(smooth_infomax.__file__).resolve().parent
    if os.environ.get("SIM_TEST_WHEEL") == "1":
        assert REPO not in package.parents, f"testing the source tree ({package}), not the installed wheel"
        assert "site-packages" in package.parts
    else:
        assert package == REPO / "smooth_infomax"


def test_package_data_is_inside_the_package():
    package = Path(smooth_infomax.__file__).resolve().parent
    assert shipped_models()[DEFAULT_MODEL].parent.parent == package
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (shipped_models()[DEFAULT_MODEL] / name).is_file()
    decoders = sorted(p.parent for p in (shipped_models()[DEFAULT_MODEL] / "decoders").glob("module-*/*/config.json"))
    assert [d.relative_to(shipped_models()[DEFAULT_MODEL] / "decoders").as_posix() for d in decoders] == [
        "module-0/logmel", "module-1/logmel", "module-2/logmel", "module-2/waveform"]
    for decoder in decoders:
        assert (decoder / "model.safetensors").is_file() and (decoder / "README.md").is_file()
    # readable by every user of a shared installation (safetensors writes its files 0600)
    model_files = [p for p in shipped_models()[DEFAULT_MODEL].rglob("*") if p.is_file()]
    assert all(p.stat().st_mode & 0o444 == 0o444 for p in model_files), [
        p for p in model_files if p.stat().st_mode & 0o444 != 0o444]
    # sim-synth stays in the source tree (training/models/sim-synth), out of the wheel
    assert "sim-synth" not in shipped_models() and not (package / "models" / "sim-synth").exists()
    assert len(example_files()) == 3 and all(p.parent.parent == package for p in example_files())
