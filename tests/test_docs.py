"""The Python examples of README and of the guides listed here run as written (in a fresh folder, against the local
Hub of conftest.py): collected from the Markdown, so the docs cannot drift."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *(ROOT / "docs" / f"{name}.md" for name in ("extract", "models", "cli", "finetuning"))]
PYTHON_BLOCKS = [block for path in DOCUMENTS
                 for block in re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)]


def test_the_documents_have_python_examples():
    assert PYTHON_BLOCKS


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_block_runs(index, capsys, tmp_path, monkeypatch, hub):
    monkeypatch.chdir(tmp_path)
    exec(compile(PYTHON_BLOCKS[index], f"python block {index}", "exec"), {})
    assert capsys.readouterr().out  # the example prints what it computed
