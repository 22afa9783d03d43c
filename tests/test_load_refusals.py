"""Loading refuses weights it would otherwise cast or compute with silently: integer-typed float weights,
NaN or infinite values, and a config that does not match the weights (checked before anything is allocated);
the converter's errors are one line with exit 1."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.hub import LoadError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model")
    SmoothInfoMaxEncoder.from_preset("sim").save_pretrained(path)
    return path


def _with_weights(folder, tmp_path, change):
    target = tmp_path / "model"
    target.mkdir()
    for name in ("config.json", "README.md"):
        (target / name).write_bytes((folder / name).read_bytes())
    tensors = load_file(str(folder / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(target / "model.safetensors"))
    return target


def _first_conv(tensors):
    return next(k for k in tensors if k.endswith("conv.weight"))


def test_integer_weights_are_refused_not_cast(folder, tmp_path):
    def to_int64(tensors):
        key = _first_conv(tensors)
        tensors[key] = (tensors[key] * 100).round().to(torch.int64)

    with pytest.raises(LoadError, match=r"wrong dtypes \(float weights must be F32/F16/BF16\).*conv.weight: I64"):
        SmoothInfoMaxEncoder.from_pretrained(_with_weights(folder, tmp_path, to_int64))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(folder, tmp_path, value):
    def poison(tensors):
        tensors[_first_conv(tensors)].fill_(value)

    with pytest.raises(LoadError, match="NaN or infinite values.*conv.weight"):
        SmoothInfoMaxEncoder.from_pretrained(_with_weights(folder, tmp_path, poison))


def test_float16_and_bfloat16_weights_still_load(folder, tmp_path):
    def to_bf16(tensors):
        for key, tensor in tensors.items():
            if tensor.is_floating_point():
                tensors[key] = tensor.to(torch.bfloat16)

    model = SmoothInfoMaxEncoder.from_pretrained(_with_weights(folder, tmp_path, to_bf16))
    assert next(model.parameters()).dtype == torch.float32


_LOAD_AND_REPORT_PEAK = """
import resource, sys
from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.hub import LoadError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    SmoothInfoMaxEncoder.from_pretrained(sys.argv[1])
except LoadError as error:
    print("LoadError", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, str(error)[:300])
"""


@pytest.mark.slow
def test_mismatching_config_allocates_nothing(folder, tmp_path):
    target = _with_weights(folder, tmp_path, lambda tensors: None)
    config = json.loads((target / "config.json").read_text())
    for module in config["modules"]:
        for layer in module["conv_layers"]:
            layer["channels"] = 8192  # about 2.4 GB of float32 parameters if the model were built
    (target / "config.json").write_text(json.dumps(config))
    done = subprocess.run([sys.executable, "-c", _LOAD_AND_REPORT_PEAK, str(target)], capture_output=True, text=True,
                          timeout=120)
    kind, grown_mib, message = done.stdout.split(" ", 2)
    assert kind == "LoadError" and "wrong shapes" in message
    assert int(grown_mib) < 200, f"loading a mismatching folder grew the peak memory by {grown_mib} MiB"


@pytest.mark.slow
def test_converter_errors_are_one_line_and_exit_1(tmp_path):
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    for path, expected in ((tmp_path / "junk.ckpt", "not a PyTorch tensor checkpoint (unreadable pickle stream)"),
                           (tmp_path / "absent.ckpt", "no such file")):
        done = subprocess.run([sys.executable, "-m", "smooth_infomax.convert", str(path), str(tmp_path / "out"),
                               "--preset", "sim"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [f"error: {path}: {expected}"]
        assert "Traceback" not in done.stderr and "weights_only=False" not in done.stderr
