"""Run by .ci/run against the built wheel installed in a fresh virtual environment (SIM_TEST_WHEEL=1): the package
imported must be the installed one, with its shipped model and example audio inside it."""

import os
from pathlib import Path

import smooth_infomax
from smooth_infomax.examples import example_files
from smooth_infomax.hub import shipped_models

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
    assert shipped_models()["sim-synth"].parent.parent == package
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (shipped_models()["sim-synth"] / name).is_file()
    assert len(example_files()) == 3 and all(p.parent.parent == package for p in example_files())
