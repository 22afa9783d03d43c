"""Run by .ci/run against the built wheel installed in a fresh virtual environment (SIM_TEST_WHEEL=1): the package
imported must be the installed one, with its shipped model and example audio inside it."""

import os
from pathlib import Path

import pytest

import smooth_infomax
from smooth_infomax.examples import example_files
from smooth_infomax.hub import shipped_models

REPO = Path(__file__).resolve().parents[1]
wheel_only = pytest.mark.skipif(os.environ.get("SIM_TEST_WHEEL") != "1", reason="only in .ci/run's wheel stage")


@wheel_only
def test_the_installed_package_is_the_one_under_test():
    package = Path(smooth_infomax.__file__).resolve().parent
    assert REPO not in package.parents, f"testing the source tree ({package}), not the installed wheel"
    assert "site-packages" in package.parts


def test_package_data_is_inside_the_package():
    package = Path(smooth_infomax.__file__).resolve().parent
    assert shipped_models()["sim-synth"].parent.parent == package
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (shipped_models()["sim-synth"] / name).is_file()
    assert len(example_files()) == 3 and all(p.parent.parent == package for p in example_files())
