"""Every Python example of README.md and docs/ runs as written (in a fresh folder, against the local Hub of
conftest.py), and README's main-job command runs verbatim: collected from the Markdown, so the docs cannot drift."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON_BLOCKS = [block for path in DOCUMENTS
                 for block in re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)]


def test_the_documents_have_python_examples():
    assert PYTHON_BLOCKS


@pytest.fixture
def docs_workspace(tone_corpus):
    """Makes a folder holding what the examples name: `data/synth` (the tone corpus of tests/tone_corpus.py, in the
    synthetic corpus's layout) and de Boer-format files under `ASD/`."""
    from data_fixtures import write_deboer_fixture

    corpus = tone_corpus

    def make(folder: Path) -> Path:
        (folder / "data").mkdir()
        (folder / "data" / "synth").symlink_to(corpus)
        write_deboer_fixture(folder / "ASD" / "split up data padded" / "train", "syllables", ["babidu", "gagiba"])
        write_deboer_fixture(folder / "ASD" / "reshuffledv2" / "train", "words", ["babidu"])
        return folder

    return make


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_block_runs(index, capsys, tmp_path, monkeypatch, hub, docs_workspace):
    monkeypatch.chdir(docs_workspace(tmp_path))
    exec(compile(PYTHON_BLOCKS[index], f"python block {index}", "exec"), {})
    assert capsys.readouterr().out  # the example prints what it computed


README_BASH = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
_NOT_COPIED = shutil.ignore_patterns(".git", "data", "runs", "results", "dist", "build", "*.egg-info", "__pycache__",
                                     "sim_examples", "sim_features")


def test_readme_commands_are_the_two_documented_ones():
    main_job, test_command = (block.strip() for block in README_BASH)
    assert main_job.startswith("pip install . && ") and "sim-extract" in main_job
    assert test_command == "bash .ci/run"  # CI runs exactly this script
    assert "pytest" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_readme_main_job_runs_as_written_in_a_fresh_environment(tmp_path):
    """The Quickstart's first command, verbatim, in a copy of the checkout and a new virtual environment. Offline:
    dependencies come from this environment (see _venv_seeing), the build uses its hatchling."""
    main_job = README_BASH[0].strip()
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT, checkout, ignore=_NOT_COPIED)
    venv = tmp_path / "venv"
    _venv_seeing(sys.executable, venv)
    # ensurepip's old setuptools would shadow this environment's (torch needs a newer one, and we are offline)
    subprocess.run([venv / "bin" / "python", "-m", "pip", "uninstall", "-q", "-y", "setuptools"], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "PIP_NO_INDEX": "1",
           "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "VIRTUAL_ENV": str(venv)}
    result = subprocess.run(["bash", "-c", main_job], cwd=checkout, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    outputs = sorted(p.name for p in (checkout / "sim_features").glob("*.safetensors"))
    assert outputs == sorted(f"{p.name}.safetensors" for p in (checkout / "sim_examples").glob("*.flac"))
    assert len(outputs) == 3


@pytest.mark.slow
def test_a_venv_made_inside_a_venv_sees_the_outer_venvs_packages(tmp_path):
    """The case of a contributor who runs `bash .ci/run` in an activated venv: `--system-site-packages` alone
    would show the nested venv the base interpreter's packages, not the outer venv's."""
    outer, nested = tmp_path / "outer", tmp_path / "nested"
    _venv_seeing(sys.executable, outer)
    (Path(_site_packages(outer / "bin" / "python")) / "only_in_outer_venv.py").write_text("HERE = True\n")
    _venv_seeing(str(outer / "bin" / "python"), nested)
    for package in ("only_in_outer_venv", "smooth_infomax", "hatchling"):
        result = subprocess.run([nested / "bin" / "python", "-c", f"import {package}"], capture_output=True, text=True)
        assert result.returncode == 0, f"{package}: {result.stderr[-1000:]}"


def _venv_seeing(parent_python: str, venv: Path) -> None:
    """A new venv at ``venv`` that sees every package of ``parent_python``'s environment (the base interpreter's
    through ``--system-site-packages``, a parent venv's through a ``.pth`` file), as .ci/run makes its own."""
    subprocess.run([parent_python, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    script = "import sys; print('\\n'.join(p for p in sys.path if p.endswith(('site-packages', 'dist-packages'))))"
    parent_dirs = subprocess.run([parent_python, "-c", script], capture_output=True, text=True, check=True).stdout
    (Path(_site_packages(venv / "bin" / "python")) / "parent_environment.pth").write_text(parent_dirs)


def _site_packages(python: Path) -> str:
    script = "import sysconfig; print(sysconfig.get_path('purelib'))"
    return subprocess.run([python, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
