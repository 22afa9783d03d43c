"""docs/export.md's examples run as written, and what it says of them holds: the exported program and the ONNX models
match PyTorch at other batch sizes and lengths, down to the documented shortest inputs."""

import contextlib
import importlib.util
import io
import os
import re
from pathlib import Path

import pytest
import torch

from smooth_infomax.geometry import output_lengths

DOC = Path(__file__).resolve().parents[1] / "docs" / "export.md"
TORCH_EXPORT, ONNX = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
SHORTEST_EXPORTED, SHORTEST_ONNX = 201, 41  # the shortest inputs the document names


def _missing(*packages: str) -> list[str]:
    return [name for name in packages if importlib.util.find_spec(name) is None]


def needs(*packages: str) -> pytest.MarkDecorator:
    """Skip unless ``packages`` import (they come with the `export` and `dev` extras)."""
    missing = _missing(*packages)
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}: pip install -e '.[export]'")


def run_example(code: str, folder: Path, name: str) -> tuple[dict, list[str]]:
    """Execute one example in ``folder`` (it writes its files to the working directory); return its globals and
    the lines it printed."""
    namespace: dict = {}
    printed = io.StringIO()
    previous = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"docs/export.md: {name}", "exec"), namespace)
    finally:
        os.chdir(previous)
    return namespace, printed.getvalue().splitlines()


def assert_matches(got, expected, atol: float) -> None:
    for g, e in zip(got, expected, strict=True):
        assert tuple(g.shape) == tuple(e.shape)
        torch.testing.assert_close(torch.as_tensor(g), e, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def torch_export_example(tmp_path_factory):
    """docs/export.md's torch.export example, run once for the tests that read its program."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield run_example(TORCH_EXPORT, tmp_path_factory.mktemp("torch_export"), "torch.export")
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_torch_export_example_runs_at_other_shapes(torch_export_example):
    namespace, printed = torch_export_example
    assert printed[0] == "[(3, 1200, 512), (3, 301, 512), (3, 150, 512)]"  # the shapes the comment shows
    assert float(printed[1]) == 0.0
    exported, convs, config = namespace["exported"], namespace["convs"], namespace["encoder"].config
    assert not any(m.training for m in convs.modules())
    for batch, samples in [(1, SHORTEST_EXPORTED), (2, 5000), (1, 16000)]:
        wav = torch.randn(batch, samples)
        with torch.no_grad():
            expected = convs(wav)
        got = exported(wav)
        assert [m.shape[1] for m in got] == output_lengths(config, samples)[:3]
        assert_matches(got, expected, atol=0)
    with pytest.raises(AssertionError, match=str(SHORTEST_EXPORTED)):
        exported(torch.randn(1, SHORTEST_EXPORTED - 1))


@pytest.mark.slow
@needs("onnx", "onnxruntime")
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning",
                            "ignore:Exporting a model to ONNX with a batch_size other than 1:UserWarning")
def test_onnx_example_runs_at_other_shapes(tmp_path):
    import onnx

    namespace, printed = run_example(ONNX, tmp_path, "ONNX")
    assert printed[0] == "[(3, 1200, 512), (3, 301, 512), (3, 150, 512), (3, 150, 256)]"
    assert float(printed[1]) < 1e-4
    saved = onnx.load(tmp_path / "sim_encoder.onnx")
    assert [o.version for o in saved.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert "GRU" in {node.op_type for node in saved.graph.node}
    session, model, names = namespace["session"], namespace["model"], namespace["names"]
    assert not any(m.training for m in model.modules())  # BatchNorm with running statistics, as exported
    for batch, samples in [(1, SHORTEST_ONNX), (1, 16000), (2, 7777)]:
        wav = torch.randn(batch, samples)
        with torch.no_grad():
            expected = model(wav)
        assert_matches(session.run(names, {"waveform": wav.numpy()}), expected, atol=1e-4)


@pytest.mark.slow
@needs("onnx", "onnxruntime", "onnxscript")
def test_the_dynamo_exporter_converts_the_exported_conv_modules(torch_export_example, tmp_path):
    import onnxruntime

    namespace, _ = torch_export_example
    path = tmp_path / "sim_convs.onnx"
    torch.onnx.export(namespace["program"], dynamo=True, verbose=False).save(path)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch, samples in [(1, SHORTEST_EXPORTED), (3, 24_001)]:
        wav = torch.randn(batch, samples)
        with torch.no_grad():
            expected = namespace["convs"](wav)
        assert_matches(session.run(None, {session.get_inputs()[0].name: wav.numpy()}), expected, atol=1e-4)
