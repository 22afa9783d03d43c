"""The training tree at small scale on CPU: smoke runs per preset, exact resume, divergence, export, configs."""

import json

import pytest
import torch

from smooth_infomax import SmoothInfoMaxEncoder
from training.checkpoint import latest_checkpoint, load_checkpoint
from training.config import TrainConfig, load_config
from training.export import export
from training.train import TrainingDiverged, train


@pytest.fixture(scope="module")
def corpus(tone_corpus):
    return tone_corpus


def small_config(corpus, out_dir, **changes):
    values = dict(preset="sim", data_root=str(corpus), out_dir=str(out_dir), val_fraction=0.3, crop_samples=10240,
                  batch_size=2, steps=8, num_workers=0, checkpoint_every=4, val_every=4, val_batches=1, log_every=1,
                  device="cpu", tensorboard=False, seed=3, deterministic=True)
    values.update(changes)
    return TrainConfig(**values)


def read_losses(run_dir, split="train"):
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    return [float(r["loss"]) for r in rows if r["split"] == split]


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["sim", "gim_sim_repo", "gim", "cpc"])
def test_each_preset_trains_and_its_loss_decreases(corpus, tmp_path, preset):
    run_dir = train(small_config(corpus, tmp_path / preset, preset=preset, steps=10))
    losses = read_losses(run_dir)
    assert len(losses) == 10 and all(map(lambda x: x == x, losses))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert len(read_losses(run_dir, "val")) == 3  # steps 4, 8 and the last
    state = load_checkpoint(latest_checkpoint(run_dir))
    assert state["step"] == 10


@pytest.mark.slow
def test_resume_continues_exactly(corpus, tmp_path):
    straight = train(small_config(corpus, tmp_path / "straight", steps=6, checkpoint_every=3))
    halves = small_config(corpus, tmp_path / "halves", steps=3, checkpoint_every=3)
    train(halves)
    train(halves.replace(steps=6), resume=True)
    a = load_checkpoint(latest_checkpoint(straight))
    b = load_checkpoint(latest_checkpoint(tmp_path / "halves"))
    assert a["step"] == b["step"] == 6
    for key in a["encoder"]:
        assert torch.equal(a["encoder"][key], b["encoder"][key]), key
    for key in a["predictors"]:
        assert torch.equal(a["predictors"][key], b["predictors"][key]), key


@pytest.mark.slow
def test_divergence_stops_and_keeps_the_last_good_checkpoint(corpus, tmp_path):
    config = small_config(corpus, tmp_path / "run", preset="gim", steps=2, checkpoint_every=2)
    train(config)
    good = latest_checkpoint(tmp_path / "run").read_bytes()
    exploding = config.replace(steps=4, model={"input_gain": 1e30})  # no BatchNorm in gim: scores overflow
    with pytest.raises(TrainingDiverged, match="step 3.*last good checkpoint"):
        train(exploding, resume=True)
    assert latest_checkpoint(tmp_path / "run").name == "step_00000002.pt"
    assert latest_checkpoint(tmp_path / "run").read_bytes() == good


@pytest.mark.slow
def test_export_reloads_with_identical_features(corpus, tmp_path):
    run_dir = train(small_config(corpus, tmp_path / "run", steps=2))
    encoder = export(run_dir, tmp_path / "model", training_data="tiny synthetic corpus",
                     metrics={"phone accuracy (%)": 12.5})
    loaded = SmoothInfoMaxEncoder.from_pretrained(tmp_path / "model")
    wav = torch.randn(5000)
    for a, b in zip(encoder.extract(wav), loaded.extract(wav), strict=True):
        assert torch.equal(a.mean, b.mean)
    card = (tmp_path / "model" / "README.md").read_text()
    assert "tiny synthetic corpus" in card and "2 steps of batch 2" in card and "12.50" in card
    assert f'from_pretrained("{(tmp_path / "model").as_posix()}")' in card


def test_init_from_starts_a_new_run_from_an_exported_encoder(corpus, tmp_path):
    source = SmoothInfoMaxEncoder.from_preset("sim")
    torch.nn.init.normal_(source.stages[0].convs[0].conv.weight)  # unlike a fresh seed-3 encoder
    source.save_pretrained(tmp_path / "source")
    run_dir = train(small_config(corpus, tmp_path / "run", steps=1, checkpoint_every=1,
                                 init_from=str(tmp_path / "source"), learning_rate=1e-12))
    trained = load_checkpoint(latest_checkpoint(run_dir))["encoder"]
    for key, value in source.named_parameters():  # BatchNorm's running statistics move with any step
        torch.testing.assert_close(trained[key], value, rtol=0, atol=1e-6, msg=key)
    with pytest.raises(ValueError, match="init_from=.*architecture differs"):
        train(small_config(corpus, tmp_path / "gim", preset="gim", init_from=str(tmp_path / "source")))
    other_loss = train(small_config(corpus, tmp_path / "k2", steps=1, checkpoint_every=1, learning_rate=1e-12,
                                    init_from=str(tmp_path / "source"), model={"loss": {"prediction_steps": 2}}))
    state = load_checkpoint(latest_checkpoint(other_loss))
    assert '"prediction_steps": 2' in state["encoder_config"]
    assert state["predictors"]["layers.0.weight"].shape[0] == 2 * 512  # one 512 x 512 map per prediction step
    for key, value in source.named_parameters():
        torch.testing.assert_close(state["encoder"][key], value, rtol=0, atol=1e-6, msg=key)


def test_predictor_warmup_keeps_the_encoder_still_then_lets_it_learn(corpus, tmp_path):
    source = SmoothInfoMaxEncoder.from_preset("sim")
    source.save_pretrained(tmp_path / "source")
    run_dir = train(small_config(corpus, tmp_path / "run", steps=3, checkpoint_every=1, learning_rate=1e-3,
                                 init_from=str(tmp_path / "source"), predictor_warmup_steps=2))
    states = [load_checkpoint(run_dir / "checkpoints" / f"step_{k:08d}.pt") for k in (1, 2, 3)]
    weights = {key: value for key, value in source.named_parameters()}
    for state in states[:2]:
        for key, value in weights.items():
            assert torch.equal(state["encoder"][key], value), key
    assert any(not torch.equal(states[0]["predictors"][k], states[1]["predictors"][k]) for k in states[0]["predictors"])
    moved = [key for key, value in weights.items() if not torch.equal(states[2]["encoder"][key], value)]
    assert len(moved) == len(weights)
    with pytest.raises(ValueError, match="predictor_warmup_steps=-1"):
        small_config(corpus, tmp_path / "bad", predictor_warmup_steps=-1)


def test_resume_without_checkpoint_is_an_error(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(small_config(corpus, tmp_path / "empty"), resume=True)


def test_config_overlays_and_unknown_keys(tmp_path):
    config = load_config("sim_librispeech")
    assert (config.batch_size, config.epochs, config.learning_rate) == (8, 100, 2e-4)
    assert config.encoder_config().loss.kl_weight == 0.001
    assert load_config("gim_librispeech").encoder_config().loss.prediction_steps == 12
    (tmp_path / "bad.json").write_text(json.dumps({"include": ["../../work/none.json"]}))
    overlay = tmp_path / "typo.json"
    overlay.write_text(json.dumps({"batchsize": 4}))
    with pytest.raises(ValueError, match="unknown training config key.*batchsize"):
        load_config(overlay)
    overlay.write_text(json.dumps({"model": {"loss": {"kl_wieght": 1}}}))
    with pytest.raises(ValueError, match="kl_wieght"):
        load_config(overlay)
    with pytest.raises(ValueError, match="batch_size=0"):
        load_config("sim_synth", {"batch_size": 0})


@pytest.mark.slow
def test_export_command_pushes_to_the_hub(corpus, tmp_path, hub):
    from huggingface_hub import HfApi

    from training.export import main as export_main

    run_dir = train(small_config(corpus, tmp_path / "run", steps=1))
    export_main([str(run_dir), str(tmp_path / "model"), "--push", "sim-team/exported", "--weights-dtype", "float16"])
    assert "model.safetensors" in HfApi().list_repo_files("sim-team/exported")
    loaded = SmoothInfoMaxEncoder.from_pretrained("sim-team/exported", cache_dir=tmp_path / "cache")
    assert loaded.config.preset == "sim"
    assert loaded.card is not None and 'from_pretrained("sim-team/exported")' in loaded.card.text


@pytest.mark.slow
def test_tensorboard_gets_the_per_module_scalars(corpus, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = train(small_config(corpus, tmp_path / "run", steps=2, tensorboard=True))
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/m0_nce", "train/m0_kl", "train/m3_acc", "val/m2_nce"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]


def test_export_card_lists_the_compared_models_of_the_same_evaluation(corpus, tmp_path):
    from training.export import main as export_main

    def model(name, phone, speaker):
        features = {"module 0": {"phone": {"test": {"accuracy": phone}}, "speaker": {"test": {"accuracy": speaker}}},
                    "GRU": {"phone": {"test": {"accuracy": phone + 0.1}}, "speaker": None}}
        return {"name": name, "features": features}

    results = tmp_path / "results.json"
    results.write_text(json.dumps({"models": [model("mine", 0.5, 0.9), model("other", 0.25, 0.75)]}))
    run_dir = train(small_config(corpus, tmp_path / "run", steps=1))
    export_main([str(run_dir), str(tmp_path / "model"), "--results", str(results), "--results-model", "mine",
                 "--compare", "other", "--notes", "Small."])
    card = (tmp_path / "model" / "README.md").read_text()
    assert "Small.\n\nIn the same evaluation run" in card
    assert "| mine | 60.0 (GRU) | 90.0 (module 0) |" in card and "| other | 35.0 (GRU) | 75.0 (module 0) |" in card
    with pytest.raises(ValueError, match="no model named \\['absent'\\]"):
        export_main([str(run_dir), str(tmp_path / "model2"), "--results", str(results), "--results-model", "mine",
                     "--compare", "absent"])
