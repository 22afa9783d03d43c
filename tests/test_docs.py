"""README's (and the fine-tuning guide's) Python examples run as written: collected from the Markdown, so the docs
cannot drift."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "finetuning.md"]
PYTHON_BLOCKS = [block for path in DOCUMENTS
                 for block in re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)]


def test_the_documents_have_python_examples():
    assert PYTHON_BLOCKS


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_block_runs(index, capsys):
    exec(compile(PYTHON_BLOCKS[index], f"python block {index}", "exec"), {})
    assert capsys.readouterr().out  # the example prints what it computed
