"""Converting checkpoints in the reference code's state-dict layouts (spec section 6)."""

import pytest
import torch

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.convert import convert_checkpoint, main
from smooth_infomax.hub import LoadError

CONV_SHAPES = [(512, 1, 10), (512, 512, 8), (512, 512, 4), (512, 512, 4), (512, 512, 4)]
SIM_GROUPS = [[0, 1], [2, 3], [4]]


def _randn(*shape, generator):
    return torch.randn(*shape, generator=generator)


def reference_sim_state_dict(k=10, batch_norm=True, seed=0):
    """A state dict laid out as the SIM repo's DataParallel-wrapped FullModel saves it."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for m, layers in enumerate(SIM_GROUPS):
        base = f"module.fullmodel.{m}"
        for j, layer in enumerate(layers):
            sd[f"{base}.encoder.encoder.{j}.0.weight"] = _randn(*CONV_SHAPES[layer], generator=g) * 0.05
            sd[f"{base}.encoder.encoder.{j}.0.bias"] = _randn(512, generator=g) * 0.05
            if batch_norm:
                sd[f"{base}.encoder.encoder.{j}.1.weight"] = 1 + 0.1 * _randn(512, generator=g)
                sd[f"{base}.encoder.encoder.{j}.1.bias"] = 0.1 * _randn(512, generator=g)
                sd[f"{base}.encoder.encoder.{j}.1.running_mean"] = 0.1 * _randn(512, generator=g)
                sd[f"{base}.encoder.encoder.{j}.1.running_var"] = 1 + torch.rand(512, generator=g)
                sd[f"{base}.encoder.encoder.{j}.1.num_batches_tracked"] = torch.tensor(1234)
        for head in ("mu", "var"):
            sd[f"{base}.encoder.encoder_{head}.weight"] = _randn(512, 512, 1, generator=g) * 0.05
            sd[f"{base}.encoder.encoder_{head}.bias"] = _randn(512, generator=g) * 0.05
        sd[f"{base}.loss.predictor.weight"] = _randn(512 * k, 512, generator=g) * 0.01
    for name, shape in [("weight_ih_l0", (768, 512)), ("weight_hh_l0", (768, 256)), ("bias_ih_l0", (768,)),
                        ("bias_hh_l0", (768,))]:
        sd[f"module.fullmodel.3.autoregressor.gru.{name}"] = _randn(*shape, generator=g) * 0.05
    sd["module.fullmodel.3.loss.predictor.weight"] = _randn(512 * k, 256, generator=g) * 0.01
    return sd


def reference_gim_state_dict(seed=0):
    """loeweX Greedy InfoMax: five single-layer modules `encoder.model.layer 0.0.*`, GRU in module 5, K = 12."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for m, shape in enumerate(CONV_SHAPES):
        sd[f"module.fullmodel.{m}.encoder.model.layer 0.0.weight"] = _randn(*shape, generator=g) * 0.05
        sd[f"module.fullmodel.{m}.encoder.model.layer 0.0.bias"] = _randn(512, generator=g) * 0.05
        sd[f"module.fullmodel.{m}.loss.predictor.weight"] = _randn(6144, 512, generator=g) * 0.01
    for name, shape in [("weight_ih_l0", (768, 512)), ("weight_hh_l0", (768, 256)), ("bias_ih_l0", (768,)),
                        ("bias_hh_l0", (768,))]:
        sd[f"module.fullmodel.5.autoregressor.gru.{name}"] = _randn(*shape, generator=g) * 0.05
    sd["module.fullmodel.5.loss.predictor.weight"] = _randn(6144, 256, generator=g) * 0.01
    return sd


def reference_forward_module0(sd, wav):
    """Module 0 mean computed straight from the reference tensors (Conv -> BN(eval) -> ReLU, twice; then mu)."""
    x = wav[None, None]
    for j, (stride, pad) in enumerate([(5, 2), (4, 2)]):
        p = f"module.fullmodel.0.encoder.encoder.{j}"
        x = torch.conv1d(x, sd[f"{p}.0.weight"], sd[f"{p}.0.bias"], stride=stride, padding=pad)
        x = torch.batch_norm(x, sd[f"{p}.1.weight"], sd[f"{p}.1.bias"], sd[f"{p}.1.running_mean"],
                             sd[f"{p}.1.running_var"], False, 0.0, 1e-5, False)
        x = torch.relu(x)
    mu = torch.conv1d(x, sd["module.fullmodel.0.encoder.encoder_mu.weight"],
                      sd["module.fullmodel.0.encoder.encoder_mu.bias"])
    return mu[0].T


@pytest.mark.slow
def test_sim_checkpoint_converts_and_computes_the_same(tmp_path):
    sd = reference_sim_state_dict(k=12)
    torch.save(sd, tmp_path / "model_99.ckpt")
    model, conversion = convert_checkpoint(tmp_path / "model_99.ckpt", tmp_path / "out", "sim")
    assert conversion.config.loss.prediction_steps == 12
    assert sorted(conversion.dropped) == sorted(k.removeprefix("module.") for k in sd if "predictor" in k)
    loaded = SmoothInfoMaxEncoder.from_pretrained(tmp_path / "out")
    wav = torch.randn(4000)
    expected = reference_forward_module0(sd, wav)
    torch.testing.assert_close(loaded.extract(wav, modules=[0])[0].mean[0], expected, atol=1e-5, rtol=1e-4)
    gru = loaded.stages[3].gru.weight_hh_l0
    assert torch.equal(gru, sd["module.fullmodel.3.autoregressor.gru.weight_hh_l0"])


@pytest.mark.slow
def test_sim_without_batch_norm_is_detected(tmp_path):
    torch.save(reference_sim_state_dict(batch_norm=False), tmp_path / "m.ckpt")
    model, conversion = convert_checkpoint(tmp_path / "m.ckpt", tmp_path / "out", "sim")
    assert not any(m.batch_norm for m in conversion.config.modules)
    assert conversion.config.loss.prediction_steps == 10


def test_gim_baseline_of_the_sim_repo_drops_its_unused_var_head(tmp_path):
    torch.save(reference_sim_state_dict(), tmp_path / "m.ckpt")
    model, conversion = convert_checkpoint(tmp_path / "m.ckpt", tmp_path / "out", "gim_sim_repo")
    dropped_var = [k for k in conversion.dropped if "encoder_var" in k]
    assert len(dropped_var) == 6
    assert model.stages[0].head.logvar is None


@pytest.mark.slow
def test_original_gim_layout(tmp_path):
    sd = reference_gim_state_dict()
    torch.save(sd, tmp_path / "m.ckpt")
    model, conversion = convert_checkpoint(tmp_path / "m.ckpt", tmp_path / "out", "gim")
    assert conversion.config.loss.prediction_steps == 12
    assert torch.equal(model.stages[4].convs[0].conv.weight, sd["module.fullmodel.4.encoder.model.layer 0.0.weight"])


@pytest.mark.slow
def test_wrong_preset_is_a_clear_error(tmp_path):
    torch.save(reference_gim_state_dict(), tmp_path / "m.ckpt")
    with pytest.raises(LoadError, match="as preset .sim.. does not match"):
        convert_checkpoint(tmp_path / "m.ckpt", tmp_path / "out", "sim")


def test_unknown_keys_are_refused(tmp_path):
    sd = reference_sim_state_dict()
    sd["module.fullmodel.0.something_else.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "m.ckpt")
    with pytest.raises(LoadError, match="no known reference layout"):
        convert_checkpoint(tmp_path / "m.ckpt", tmp_path / "out", "sim")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/smooth_infomax_pwned",))


def test_pickled_objects_are_not_executed(tmp_path):
    torch.save({"x": _Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(LoadError, match="never unpickled"):
        convert_checkpoint(tmp_path / "evil.ckpt", tmp_path / "out", "sim")
    import os

    assert not os.path.exists("/tmp/smooth_infomax_pwned")


@pytest.mark.slow
def test_command_line(tmp_path, capsys):
    torch.save(reference_sim_state_dict(), tmp_path / "model_99.ckpt")
    main([str(tmp_path / "model_99.ckpt"), str(tmp_path / "out"), "--preset", "sim"])
    assert "dropped fullmodel.0.loss.predictor.weight" in capsys.readouterr().out
    assert (tmp_path / "out" / "model.safetensors").is_file()
