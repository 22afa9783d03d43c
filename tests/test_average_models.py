"""training.average_models: weight averages of encoders, their refusals, and the command-line tool."""

import pytest
import torch

from smooth_infomax import SmoothInfoMaxEncoder
from training.average_models import average_encoders, main


def _encoder(seed: int, preset: str = "sim") -> SmoothInfoMaxEncoder:
    """A random encoder whose batch-norm statistics are random too, so that averaging them is visible."""
    torch.manual_seed(seed)
    encoder = SmoothInfoMaxEncoder.from_preset(preset).eval()
    for buffer in encoder.buffers():
        if buffer.is_floating_point():
            buffer.copy_(torch.rand_like(buffer) + 0.5)
        else:
            buffer.fill_(seed + 10)
    return encoder


def test_the_average_is_the_weighted_mean_of_every_float_tensor():
    first, second = _encoder(0), _encoder(1)
    for weights, share in ((None, 0.5), ([3.0, 1.0], 0.75)):
        averaged = average_encoders([first, second], weights).state_dict()
        a, b = first.state_dict(), second.state_dict()
        for key, tensor in averaged.items():
            if tensor.is_floating_point():
                torch.testing.assert_close(tensor, share * a[key] + (1 - share) * b[key], rtol=1e-6, atol=1e-7)
            else:
                assert torch.equal(tensor, a[key]), key  # integer buffers come from the first model
    assert any("running_var" in key for key in averaged)


def test_averaging_a_model_with_itself_changes_nothing():
    encoder = _encoder(2)
    averaged = average_encoders([encoder, encoder, encoder])
    for key, tensor in encoder.state_dict().items():
        assert torch.equal(averaged.state_dict()[key], tensor), key
    wav = torch.randn(1, 8000)
    with torch.no_grad():
        for mine, theirs in zip(encoder.forward_features(wav), averaged.forward_features(wav), strict=True):
            assert torch.equal(mine.mean, theirs.mean)


def test_models_of_different_architectures_or_bad_weights_are_refused():
    with pytest.raises(ValueError, match="model 1 has a different architecture"):
        average_encoders([_encoder(0, "sim"), _encoder(0, "gim")])
    with pytest.raises(ValueError, match="one non-negative weight per model"):
        average_encoders([_encoder(0), _encoder(1)], [1.0])
    with pytest.raises(ValueError, match="one non-negative weight per model"):
        average_encoders([_encoder(0), _encoder(1)], [1.0, -1.0])
    with pytest.raises(ValueError, match="no models given"):
        average_encoders([])


def test_the_command_writes_a_loadable_folder_and_never_overwrites_one(tmp_path, capsys):
    first, second = _encoder(3), _encoder(4)
    first.save_pretrained(tmp_path / "a")
    second.save_pretrained(tmp_path / "b")
    main([str(tmp_path / "soup"), str(tmp_path / "a"), str(tmp_path / "b"), "--dtype", "float16"])
    assert "the mean of 2 models" in capsys.readouterr().out
    loaded = SmoothInfoMaxEncoder.from_pretrained(tmp_path / "soup")
    expected = average_encoders([first, second]).state_dict()
    for key, tensor in loaded.state_dict().items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, expected[key].half().float(), rtol=0, atol=0)
    card = (tmp_path / "soup" / "README.md").read_text()
    assert str(tmp_path / "a") in card and str(tmp_path / "b") in card
    before = (tmp_path / "soup" / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "soup"), str(tmp_path / "a")])
    assert "already holds a model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "other"), str(tmp_path / "a"), str(tmp_path / "b"), "--weights", "1"])
    assert "one non-negative weight per model (2)" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
    assert (tmp_path / "soup" / "model.safetensors").read_bytes() == before
