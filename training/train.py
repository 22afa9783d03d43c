"""Train SIM, GIM or CPC with greedy per-module InfoNCE (and KL for SIM): one readable loop.

    python -m training.train sim_synth                      # a config name under training/configs, or a path
    python -m training.train sim_synth --set steps=200 --set batch_size=4
    python -m training.train sim_synth --resume             # continue from the run's latest checkpoint
    python -m training.train sim_deboer --set data_root=PATH   # de Boer's Artificial Speech Dataset
    torchrun --nproc_per_node=4 -m training.train sim_librispeech   # DistributedDataParallel, one GPU per rank
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from smooth_infomax import SmoothInfoMaxEncoder
from training.batches import MixedCrops, StepBatches, split_validation, step_loader
from training.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    random_states,
    restore_random_states,
    save_checkpoint,
)
from training.config import TrainConfig, load_config, merge_dicts, parse_override
from training.data.deboer import WORDS_FOLDER, WordCrops, word_training_sets
from training.data.librispeech import CorpusPaths, CropDataset, build_speaker_map, read_split
from training.logger import RunLogger
from training.objective import Generators, GreedyObjective


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class Process:
    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_process(device_setting: str) -> Process:
    """Join the torchrun process group when launched by torchrun; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    cuda = torch.cuda.is_available() and device_setting in ("auto", "cuda") or device_setting.startswith("cuda:")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(device_setting if device_setting.startswith("cuda:") else f"cuda:{local_rank}")
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return Process(rank, world, device)


TrainingItems = CropDataset | MixedCrops | WordCrops


def build_datasets(config: TrainConfig) -> tuple[TrainingItems, TrainingItems]:
    """Training and validation crops of ``data_root``, or of it and the ``mix`` corpora in their shares; for the
    Artificial Speech Dataset (``layout: deboer``) its training and validation words."""
    if config.layout == "deboer":
        return word_training_sets(config.data_root, config.crop_samples)
    roots = [config.data_root, *config.mix]
    shares = [1.0 - sum(config.mix.values()), *config.mix.values()]
    trains, vals = [], []
    for root in roots:
        paths = CorpusPaths(Path(root))
        if not paths.labels_dir.is_dir() and (paths.root / WORDS_FOLDER).is_dir():
            raise FileNotFoundError(f"{root} is the Artificial Speech Dataset, not a LibriSpeech-layout corpus: "
                                    "train with the config sim_deboer (or --set layout=deboer)")
        train_ids, val_ids = split_validation(read_split(paths.split(Path(config.train_split).stem)),
                                              config.val_fraction)
        speakers = build_speaker_map(train_ids, val_ids)
        trains.append(CropDataset(paths.audio_dir, train_ids, speakers, config.crop_samples, config.seed,
                                  speeds=config.speeds.get(root, (1.0,))))
        vals.append(CropDataset(paths.audio_dir, val_ids, speakers, config.crop_samples, config.seed + 1))
    if not config.mix:
        return trains[0], vals[0]
    return MixedCrops(trains, shares), MixedCrops(vals, shares)


@torch.no_grad()
def validate(objective: GreedyObjective, val: CropDataset, config: TrainConfig,
             process: Process) -> tuple[float, torch.Tensor]:
    """Mean loss and per-module metrics over ``val_batches`` fixed batches, in eval mode (BatchNorm frozen);
    NaN when the validation split cannot fill one batch."""
    batches = min(config.val_batches, len(val) // config.batch_size)
    if batches == 0:
        return float("nan"), torch.full((len(objective.encoder.stages), 3), float("nan"))
    objective.eval()
    sampler = StepBatches(len(val), config.batch_size, batches, config.seed)
    generators = Generators.seeded(config.seed + 7, process.device)
    losses, metrics = [], []
    for batch in step_loader(val, sampler, 0):
        with _autocast(config, process):
            loss, modules = objective(batch.audio.to(process.device), generators)
        losses.append(loss.float())
        metrics.append(modules.float())
    objective.train()
    return torch.stack(losses).mean().item(), torch.stack(metrics).mean(0).cpu()


def total_training_steps(config: TrainConfig, n_train: int, world: int) -> int:
    """``config.steps``, or ``epochs`` full passes over ``n_train`` utterances in global batches (drop last)."""
    if config.epochs == 0:
        return config.steps
    return config.epochs * (n_train // (config.batch_size * world))


def compute_dtype(config: TrainConfig, device: torch.device) -> torch.dtype:
    """bfloat16 where the config asks for it and the device computes it natively, else float32."""
    wanted = config.bf16 if device.type == "cuda" else config.bf16_cpu and cpu_has_native_bf16()
    return torch.bfloat16 if wanted else torch.float32


def _autocast(config: TrainConfig, process: Process):
    dtype = compute_dtype(config, process.device)
    return torch.autocast(process.device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: where bfloat16 autocast speeds a CPU step up rather than slowing it down."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run (or continue) training; returns the run folder holding checkpoints, metrics and the config.

    With ``config.deterministic`` torch's deterministic algorithms are on for the run (restored afterwards), so a
    resumed run reproduces an uninterrupted one bit for bit on CPU.
    """
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(config.deterministic)
    try:
        return _train(config, resume)
    finally:
        torch.use_deterministic_algorithms(previous)


def _train(config: TrainConfig, resume: bool) -> Path:
    process = setup_process(config.device)
    run_dir = Path(config.out_dir)
    torch.manual_seed(config.seed + process.rank)
    objective = GreedyObjective(config.encoder_config()).to(process.device)
    optimizer = torch.optim.Adam(objective.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    generators = Generators.seeded(config.seed * 1000 + process.rank, process.device)
    named_generators = {"noise": generators.noise, "draws": generators.draws}
    step, elapsed_s = 0, 0.0
    if resume:
        step, elapsed_s = _resume(run_dir, process, objective, optimizer, scheduler, named_generators)
    elif config.init_from:
        initialise_encoder(objective, config.init_from)
    if process.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "train_config.json").write_text(config.to_json())
    model = DistributedDataParallel(objective) if process.world > 1 else objective
    train_set, val_set = build_datasets(config)
    total_steps = total_training_steps(config, len(train_set), process.world)
    sampler = StepBatches(len(train_set), config.batch_size, total_steps, config.seed, step, process.rank,
                          process.world)
    logger = RunLogger(run_dir, len(objective.encoder.stages), total_steps, step, process.is_main, config.tensorboard)
    objective.train()
    last_log_time, last_log_step = time.perf_counter(), step
    try:
        for batch in step_loader(train_set, sampler, config.num_workers):
            started = time.perf_counter()
            with _autocast(config, process):
                loss, modules = model(batch.audio.to(process.device, non_blocking=True), generators)
            if not math.isfinite(loss.item()):
                raise TrainingDiverged(
                    f"loss is {loss.item()} at step {step + 1}; stopped. The last good checkpoint "
                    f"({latest_checkpoint(run_dir)}) is kept. Lower learning_rate or check the data."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if step < config.predictor_warmup_steps:
                objective.encoder.zero_grad(set_to_none=True)  # Adam skips parameters without a gradient
            optimizer.step()
            scheduler.step()
            step += 1
            elapsed_s += time.perf_counter() - started
            logger.advance()
            if step % config.log_every == 0 or step == total_steps:
                now = time.perf_counter()
                rate = (step - last_log_step) / (now - last_log_time)
                audio_rate = rate * config.batch_size * process.world * config.crop_samples / 16000
                logger.log(step, "train", loss.item(), modules.cpu(), scheduler.get_last_lr()[0], rate, audio_rate)
                last_log_time, last_log_step = now, step
            if step % config.val_every == 0 or step == total_steps:
                val_loss, val_modules = validate(objective, val_set, config, process)
                logger.log(step, "val", val_loss, val_modules)
            if step % config.checkpoint_every == 0 or step == total_steps:
                _checkpoint(run_dir, step, elapsed_s, config, objective, optimizer, scheduler, named_generators,
                            process)
    finally:
        logger.close()
    return run_dir


def _resume(run_dir: Path, process: Process, objective: GreedyObjective, optimizer, scheduler,
            generators: dict[str, torch.Generator]) -> tuple[int, float]:
    """Restore everything from the latest checkpoint of ``run_dir``; returns its step and elapsed seconds."""
    found = latest_checkpoint(run_dir)
    if found is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}")
    state = load_checkpoint(found, process.device)
    objective.encoder.load_state_dict(state["encoder"])
    objective.predictors.load_state_dict(state["predictors"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    restore_random_states(state["random"][process.rank], generators)
    return state["step"], state["elapsed_s"]


def initialise_encoder(objective: GreedyObjective, model: str) -> None:
    """Copy an exported model's encoder weights (folder, shipped name or Hub id) into ``objective``'s encoder;
    the two architectures must be equal. The loss settings may differ (the predictors start fresh anyway): a run
    can continue a model under another number of prediction steps or KL weight."""
    source = SmoothInfoMaxEncoder.from_pretrained(model)
    if _without_loss(source.config.to_dict()) != _without_loss(objective.encoder.config.to_dict()):
        raise ValueError(f"init_from={model!r}: its architecture differs from this run's preset and model "
                         f"overrides:\n{source.config.to_json()}\nagainst\n{objective.encoder.config.to_json()}")
    objective.encoder.load_state_dict(source.state_dict())


def _without_loss(config: dict) -> dict:
    return {key: value for key, value in config.items() if key != "loss"}


def _checkpoint(run_dir, step, elapsed_s, config, objective, optimizer, scheduler, generators, process) -> None:
    """Gather every rank's random state and write one checkpoint from rank 0."""
    states = random_states(generators)
    if process.world > 1:
        gathered = [None] * process.world
        dist.all_gather_object(gathered, states)
        states_by_rank = gathered
    else:
        states_by_rank = [states]
    if not process.is_main:
        return
    payload = {
        "encoder": objective.encoder.state_dict(), "predictors": objective.predictors.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
        "elapsed_s": elapsed_s, "world": process.world, "random": states_by_rank,
        "train_config": config.to_json(), "encoder_config": objective.encoder.config.to_json(),
        "device": _device_name(process.device),
        "precision": str(compute_dtype(config, process.device)).removeprefix("torch."),
    }
    save_checkpoint(checkpoint_path(run_dir, step), payload)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    parser.add_argument("config", help="config name under training/configs (e.g. sim_synth) or a JSON file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set steps=100 --set model.loss.kl_weight=0.01")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in out_dir")
    args = parser.parse_args(argv)
    overrides: dict = {}
    for text in args.set:
        overrides = merge_dicts(overrides, parse_override(text))
    config = load_config(args.config, overrides)
    try:
        run_dir = train(config, resume=args.resume)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"run_dir": str(run_dir)}))


if __name__ == "__main__":
    main()
