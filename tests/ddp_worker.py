"""Run by tests/test_ddp.py under `torchrun --nproc_per_node=2`: one DDP gradient, then a short training run."""

import json
import os
import sys

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel

from smooth_infomax import preset
from training.config import TrainConfig
from training.objective import Generators, GreedyObjective
from training.train import train


def shard(rank: int) -> torch.Tensor:
    """The batch of one rank: (2, 1, 10240) of seeded noise."""
    return torch.randn(2, 1, 10240, generator=torch.Generator().manual_seed(100 + rank))


def main(out_dir: str, train_config_json: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    objective = GreedyObjective(preset("sim"))
    model = DistributedDataParallel(objective)
    loss, _ = model(shard(rank), Generators.seeded(rank, torch.device("cpu")))
    loss.backward()
    if rank == 0:
        grads = {name: p.grad.contiguous() for name, p in objective.named_parameters()}
        save_file(grads, os.path.join(out_dir, "ddp_grads.safetensors"))
    train(TrainConfig(**json.loads(train_config_json)))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
