"""Shared pytest configuration and fixtures."""

# ==== Local Hugging Face Hub (keep this block FIRST) ===================================================
# huggingface_hub reads HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, HF_TOKEN, HF_HUB_DISABLE_XET, ... once, when it is
# imported. So the local Hub server starts, and the environment is set, here, before anything imports
# huggingface_hub or smooth_infomax. Tests reach it through the real client; the `hub` fixture gives the server.
import atexit
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from hub_server import LocalHub

_HUB_TMP = tempfile.mkdtemp(prefix="sim-hub-")
_HUB = LocalHub(os.path.join(_HUB_TMP, "server")).start()
os.environ.update({
    "HF_ENDPOINT": _HUB.endpoint,
    "HF_HOME": os.path.join(_HUB_TMP, "hf_home"),
    "HF_HUB_CACHE": os.path.join(_HUB_TMP, "hf_home", "hub"),
    "HF_TOKEN": "local-test-token",
    "HF_HUB_DISABLE_XET": "1",  # 2.x uploads large files only through Xet otherwise
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
})
os.environ.pop("HF_HUB_OFFLINE", None)


def _stop_hub() -> None:
    _HUB.stop()
    shutil.rmtree(_HUB_TMP, ignore_errors=True)


atexit.register(_stop_hub)
# ==== end of the local Hub block ========================================================================

import pytest  # noqa: E402 -- after the Hub block above, which must run first


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``gpu`` skips a test without a CUDA device. ``requires_program(name, ...)`` and ``requires_tts(part, ...)``
    (``espeak``, ``festival``, ``flite``, ``wordnet``; default all) skip it, naming what is missing and its Debian
    package; they fail instead under ``SIM_TEST_ALL_PROGRAMS=1``, as in ``.ci/run``."""
    import data_fixtures

    if item.get_closest_marker("gpu"):
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA device")
    for marker in item.iter_markers("requires_program"):
        data_fixtures.require_programs(*marker.args)
    for marker in item.iter_markers("requires_tts"):
        data_fixtures.require_engines(*marker.args)


@pytest.fixture(scope="session")
def tone_corpus(tmp_path_factory):
    """The hermetic labelled corpus (tones and noise in LibriSpeech layout, see tests/tone_corpus.py): a Path."""
    import data_fixtures

    return data_fixtures.tone_corpus(tmp_path_factory)


@pytest.fixture(scope="session")
def hub() -> LocalHub:
    """The local Hub server the whole session talks to (``hub.endpoint`` is ``HF_ENDPOINT``)."""
    return _HUB


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op torch thread during each test, restored afterwards. On the shared 2-core machines two OpenMP
    threads per op collapse under load (the CLI tests: about 75 s with 2 threads vs 20 s with 1 when others are
    busy)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
