"""Fine-tuning API: freeze/unfreeze, the differentiable features path and LayerWeightedSum."""

import pytest
import torch

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.finetune import LayerWeightedSum


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return SmoothInfoMaxEncoder.from_preset("sim")


def _step(encoder, head, weighted, wav, lengths):
    optimizer = torch.optim.SGD([p for p in [*encoder.parameters(), *head.parameters(), *weighted.parameters()]
                                 if p.requires_grad], lr=0.1)
    feats, frame_lengths = weighted(encoder.forward_features(wav, lengths, modules=[0, 1, 2]))
    pooled = feats.sum(1) / frame_lengths[:, None]
    loss = torch.nn.functional.cross_entropy(head(pooled), torch.tensor([0, 1]))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@pytest.mark.slow
def test_forward_features_equals_extract(encoder):
    encoder.eval()
    wav, lengths = torch.randn(2, 6000), torch.tensor([6000, 4000])
    grads = encoder.forward_features(wav, lengths)
    plain = encoder.extract(wav, lengths=lengths)
    for a, b in zip(grads, plain, strict=True):
        torch.testing.assert_close(a.mean, b.mean)
    assert grads[2].mean.requires_grad


@pytest.mark.slow
@pytest.mark.parametrize("frozen", [True, False])
def test_fine_tuning_changes_the_encoder_only_when_unfrozen(encoder, frozen):
    head, weighted = torch.nn.Linear(512, 2), LayerWeightedSum(encoder)
    encoder.train()
    if frozen:
        encoder.freeze()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    _step(encoder, head, weighted, torch.randn(2, 8000), torch.tensor([8000, 5000]))
    changed = [k for k, v in encoder.state_dict().items() if not torch.equal(v, before[k])]
    if frozen:
        assert changed == []  # weights and BatchNorm statistics untouched
        assert not encoder.stages[0].training and encoder.training
    else:
        assert any("conv.weight" in k for k in changed) and any("running_mean" in k for k in changed)
    assert weighted.weights.grad is not None


def test_freeze_some_modules_then_unfreeze(encoder):
    encoder.freeze([0, 1])
    assert not any(p.requires_grad for p in encoder.stages[0].parameters())
    assert all(p.requires_grad for p in encoder.stages[2].parameters())
    encoder.train()
    assert not encoder.stages[1].training and encoder.stages[2].training
    encoder.unfreeze()
    assert all(p.requires_grad for p in encoder.parameters()) and encoder.stages[0].training


def test_layer_weighted_sum_pools_to_the_coarsest_hop(encoder):
    encoder.eval()
    weighted = LayerWeightedSum(encoder)
    assert weighted.modules_used == [0, 1, 2] and weighted.hop_samples == 160
    out = encoder.extract(torch.randn(3, 16000), lengths=torch.tensor([16000, 9000, 3000]))
    feats, lengths = weighted(out)
    assert feats.shape == (3, 99, 512)  # module 0 has 799 frames: 99 complete windows of 8
    assert lengths.tolist() == [99, 56, 18]
    assert not feats[1, 56:].any()
    # equal weights: the mean of the three pooled modules
    expected = (out[0].mean[:, :792].reshape(3, 99, 8, 512).mean(2)
                + out[1].mean[:, :198].reshape(3, 99, 2, 512).mean(2)
                + out[2].mean[:, :99]) / 3
    torch.testing.assert_close(feats[0], expected[0])
    with pytest.raises(ValueError, match="different dims"):
        LayerWeightedSum(encoder, modules=[2, 3])


@pytest.mark.slow
def test_downstream_example_runs_frozen_and_unfrozen(tone_corpus, tmp_path_factory):
    from training.finetune_example import run

    corpus = tone_corpus
    model = str(SmoothInfoMaxEncoder.from_preset("sim").save_pretrained(tmp_path_factory.mktemp("model")))
    frozen = run(str(corpus), model, True, steps=2, batch_size=2, learning_rate=1e-3, seed=0)
    tuned = run(str(corpus), model, False, steps=2, batch_size=2, learning_rate=1e-3, seed=0)
    assert frozen["trainable_parameters"] < tuned["trainable_parameters"]
    assert 0.0 <= frozen["test_accuracy"] <= 1.0 and 0.0 <= tuned["test_accuracy"] <= 1.0
