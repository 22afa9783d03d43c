"""A downstream speaker classifier on SIM features, with the encoder frozen and unfrozen (docs/finetuning.md).

    python -m training.finetune_example --data data/synth --model sim-mix --steps 300

Trains ``LayerWeightedSum`` over the conv modules plus a linear head on 1.28 s crops of the training split, once with
the encoder frozen and once fine-tuned end to end (encoder learning rate a tenth of the head's; same seed, data and
steps), and prints test accuracy on one fixed crop of every test utterance.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.finetune import LayerWeightedSum
from training.batches import StepBatches, step_loader
from training.data.librispeech import CorpusPaths, CropDataset, build_speaker_map, read_split


class SpeakerClassifier(nn.Module):
    """Encoder -> weighted sum of module means -> mean over valid frames -> linear layer."""

    def __init__(self, encoder: SmoothInfoMaxEncoder, n_speakers: int):
        super().__init__()
        self.encoder = encoder
        self.weighted = LayerWeightedSum(encoder)
        self.head = nn.Linear(encoder.output_dims[self.weighted.modules_used[0]], n_speakers)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, n_speakers)`` logits."""
        features, lengths = self.weighted(self.encoder.forward_features(waveform, modules=self.weighted.modules_used))
        pooled = features.sum(1) / lengths.clamp_min(1)[:, None].to(features.dtype)
        return self.head(pooled)


def run(data: str, model: str, freeze: bool, steps: int, batch_size: int, learning_rate: float, seed: int) -> dict:
    """Train one classifier; returns its test accuracy and wall time."""
    torch.manual_seed(seed)
    paths = CorpusPaths(data)
    train_ids, test_ids = read_split(paths.split("train_split")), read_split(paths.split("test_split"))
    speakers = build_speaker_map(train_ids, test_ids)
    encoder = SmoothInfoMaxEncoder.from_pretrained(model)
    classifier = SpeakerClassifier(encoder, len(speakers))
    if freeze:
        encoder.freeze()
    classifier.train()
    trainable = [p for p in classifier.parameters() if p.requires_grad]
    encoder_params = [p for p in encoder.parameters() if p.requires_grad]
    head_params = [*classifier.weighted.parameters(), *classifier.head.parameters()]
    groups = [{"params": head_params}]
    if encoder_params:
        groups.append({"params": encoder_params, "lr": learning_rate / 10})
    optimizer = torch.optim.Adam(groups, lr=learning_rate)
    train_set = CropDataset(paths.audio_dir, train_ids, speakers, seed=seed)
    started = time.perf_counter()
    for batch in step_loader(train_set, StepBatches(len(train_set), batch_size, steps, seed), 0):
        loss = nn.functional.cross_entropy(classifier(batch.audio.squeeze(1)), batch.speaker)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_s = round(time.perf_counter() - started, 1)
    return {"frozen": freeze, "test_accuracy": test_accuracy(classifier, paths, test_ids, speakers, seed),
            "trainable_parameters": sum(p.numel() for p in trainable), "train_s": train_s}


@torch.no_grad()
def test_accuracy(classifier: SpeakerClassifier, paths: CorpusPaths, ids: list[str], speakers: dict,
                  seed: int) -> float:
    """Accuracy over one fixed crop of every test utterance."""
    classifier.eval()
    crops = CropDataset(paths.audio_dir, ids, speakers, seed=seed + 1)
    correct = 0
    for batch in step_loader(crops, StepBatches(len(crops), 1, len(crops), seed), 0):
        correct += int((classifier(batch.audio.squeeze(1)).argmax(1) == batch.speaker).sum())
    return correct / len(crops)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.finetune_example", description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/synth")
    parser.add_argument("--model", default="sim-mix")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for freeze in (True, False):
        result = run(args.data, args.model, freeze, args.steps, args.batch_size, args.learning_rate, args.seed)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
