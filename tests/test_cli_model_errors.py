"""One model loader for the command-line tools (``hub.load_for_cli``): a model that cannot be loaded gives the same
clear message in ``sim-extract`` and ``sim-analyze``, and the conversion and evaluation tools go through it too."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from smooth_infomax.analysis.cli import main as analyze
from smooth_infomax.cli import main as extract
from smooth_infomax.hub import DEFAULT_MODEL, LoadError, load_for_cli
from test_cli_common import write_audio


def _error(output: str) -> str:
    """The error click printed: from ``Error: `` to the end (a Hub error's message has several lines)."""
    assert output.count("Error: ") == 1, output
    return output[output.index("Error: "):].strip()


@pytest.mark.parametrize("model, why", [
    ("/nonexistent/model", "not a model folder (no such folder"),
    ("sim-team/no-such-model", "has no repo 'sim-team/no-such-model' that you can see"),
    (DEFAULT_MODEL[:-1], f"did you mean '{DEFAULT_MODEL}'?"),
])
def test_a_bad_model_gives_the_same_error_in_sim_extract_and_sim_analyze(tmp_path, hub, model, why):
    write_audio(tmp_path / "in" / "a.wav", 0.2)
    extracted = CliRunner().invoke(extract, [str(tmp_path / "in"), str(tmp_path / "out"), "--model", model])
    analyzed = CliRunner().invoke(analyze, ["train-decoder", model, str(tmp_path / "in"), str(tmp_path / "dec")])
    assert extracted.exit_code == 2 and analyzed.exit_code == 1  # sim-extract's setup errors exit 2 (docs/cli.md)
    error = _error(extracted.output)
    assert error == _error(analyzed.output)
    assert error.startswith(f"Error: cannot load model {model!r}: ") and why in error
    assert not (tmp_path / "out").exists() and not (tmp_path / "dec").exists()


def test_load_for_cli_raises_the_tool_s_error_type():
    class ToolError(Exception):
        pass

    with pytest.raises(ToolError, match=r"^cannot load model '/nonexistent/model' at v1: .*not a model folder"):
        load_for_cli("/nonexistent/model", revision="v1", error=ToolError)
    with pytest.raises(LoadError, match="cannot load model"):
        load_for_cli("/nonexistent/model")


def test_convert_and_evaluate_report_load_failures_the_same_way(tmp_path, capsys):
    from smooth_infomax.convert import main as convert
    from training import evaluate_models as evaluate

    with pytest.raises(SystemExit) as exit_info:
        convert([str(tmp_path / "missing.ckpt"), str(tmp_path / "out"), "--preset", "sim"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.ckpt'}: no such file\n"
    with pytest.raises(LoadError, match=r"^cannot load model '/nonexistent/model': "):
        evaluate.load_encoder("/nonexistent/model")


def test_sim_extract_offline_names_the_offline_setting_and_the_cache(tmp_path, hub, monkeypatch):
    from huggingface_hub import constants

    write_audio(tmp_path / "in" / "a.wav", 0.2)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    result = CliRunner().invoke(extract, [str(tmp_path / "in"), str(tmp_path / "out"), "--model", "sim-team/absent"])
    assert result.exit_code == 2
    error = _error(result.output)
    assert error.startswith("Error: cannot load model 'sim-team/absent': sim-team/absent: not a local folder")
    assert "HF_HUB_OFFLINE is set, so the Hub was not asked" in error and "holds nothing of 'sim-team/absent'" in error
    assert "connection" not in error
