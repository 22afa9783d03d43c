"""Two CPU processes under torchrun (gloo): DDP gradients equal the single-process mean of per-shard gradients,
and the training loop runs distributed."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ddp_worker import shard
from smooth_infomax import preset
from training.checkpoint import latest_checkpoint, load_checkpoint
from training.objective import Generators, GreedyObjective


def single_process_mean_gradient() -> dict[str, torch.Tensor]:
    grads = {}
    for rank in (0, 1):
        torch.manual_seed(0)
        objective = GreedyObjective(preset("sim"))
        loss, _ = objective(shard(rank), Generators.seeded(rank, torch.device("cpu")))
        loss.backward()
        for name, p in objective.named_parameters():
            grads[name] = grads.get(name, 0) + p.grad / 2
    return grads


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tone_corpus, tmp_path):
    corpus = tone_corpus
    config = dict(preset="gim", data_root=str(corpus), out_dir=str(tmp_path / "run"), val_fraction=0.3,
                  crop_samples=10240, batch_size=1, steps=2, num_workers=0, checkpoint_every=2, val_every=2,
                  val_batches=1, log_every=1, device="cpu", tensorboard=False)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests'}", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(root / "tests" / "ddp_worker.py"), str(tmp_path), json.dumps(config)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:  # timed out: stop torchrun and both workers
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, stderr[-3000:]
    ddp = load_file(tmp_path / "ddp_grads.safetensors")
    reference = single_process_mean_gradient()
    assert set(ddp) == set(reference)
    for name, grad in reference.items():
        torch.testing.assert_close(ddp[name], grad, atol=1e-5, rtol=1e-3)
    state = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert state["step"] == 2 and state["world"] == 2 and len(state["random"]) == 2
