"""Data-parallel training: two gloo processes on the CPU follow the single-process run."""

import json
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from baseline_algorithm.checkpoint import read_checkpoint
from baseline_algorithm.data import synthesize_dataset
from baseline_algorithm.model import CellTissueModel, ModelConfig
from baseline_algorithm.parallel import ShardedBatchSampler
from baseline_algorithm.train import TrainingOptions, fit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_as_rank(rank, world_size, port, options, log_dir):
    """One torchrun-like process: fit one epoch, then resume for a second one."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    from baseline_algorithm import train

    seen, writes = [], []
    original_item, original_save = train.TrainingPairs.__getitem__, train.save_checkpoint

    def recording_item(self, index):
        seen.append((self.epoch, index))
        return original_item(self, index)

    def recording_save(path, *args, **kwargs):
        writes.append(Path(path).name)
        return original_save(path, *args, **kwargs)

    def recording_epoch(model, *args, **kwargs):
        result = original_epoch(model, *args, **kwargs)
        torch.save(model.module.state_dict(), Path(log_dir, f"rank{rank}.pt"))
        return result

    original_epoch = train.train_one_epoch
    train.TrainingPairs.__getitem__ = recording_item
    train.save_checkpoint = recording_save
    train.train_one_epoch = recording_epoch
    dist.init_process_group("gloo")  # fit() joins a group that is already there
    try:
        first = train.fit(TrainingOptions(**{**options, "epochs": 1}), progress=False)
        second = train.fit(TrainingOptions(**options), resume=True, progress=False)
    finally:
        dist.destroy_process_group()
    Path(log_dir, f"rank{rank}.json").write_text(
        json.dumps(
            {
                "seen": seen,
                "writes": writes,
                "world_size": [first["world_size"], second["world_size"]],
            }
        )
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return synthesize_dataset(
        tmp_path_factory.mktemp("data") / "synthetic", (8, 1, 1), size=64, seed=11, progress=False
    )


# Each precision forced, so that both branches run on any CPU (auto picks bfloat16 on one with
# native bfloat16, float32 elsewhere).
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_two_processes_share_each_global_batch_and_match_one_process(dataset, tmp_path, precision):
    options = dict(
        data=str(dataset),
        out=str(tmp_path / "ddp"),
        variant="cell-only",
        encoder="resnet18",
        epochs=2,
        batch_size=4,
        dropout_tissue=0.0,
        dropout_cell=0.0,
        dropout_aspp=0.0,
        workers=0,
        device="cpu",
        precision=precision,
        seed=3,
    )
    mp.spawn(train_as_rank, args=(2, free_port(), options, str(tmp_path)), nprocs=2)
    logs = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]

    # Disjoint shards that together are every pair of the epoch's two global batches.
    for epoch in (0, 1):
        shards = [{index for e, index in log["seen"] if e == epoch} for log in logs]
        assert len(shards[0]) == len(shards[1]) == 4
        assert not shards[0] & shards[1] and shards[0] | shards[1] == set(range(8))
    # Rank 0 alone wrote the checkpoints: best.pt (epoch 1 at least) and last.pt every epoch.
    assert logs[1]["writes"] == []
    assert logs[0]["writes"].count("last.pt") == 2 and "best.pt" in logs[0]["writes"]
    assert logs[0]["world_size"] == logs[1]["world_size"] == [2, 2]
    history = json.loads((tmp_path / "ddp" / "history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2]
    assert all(record["world_size"] == 2 for record in history)
    assert json.loads((tmp_path / "ddp" / "summary.json").read_text())["world_size"] == 2

    # All-reduced gradients: both ranks end with exactly the weights rank 0 wrote.
    written = read_checkpoint(tmp_path / "ddp" / "last.pt")["state"]
    for rank in range(2):
        weights = torch.load(tmp_path / f"rank{rank}.pt")
        for name, tensor in written.items():
            if "running" not in name and "num_batches" not in name:
                torch.testing.assert_close(weights[name], tensor, rtol=0, atol=0)

    single = fit(TrainingOptions(**{**options, "out": str(tmp_path / "single")}), progress=False)
    assert single["world_size"] == 1
    if precision != "float32":
        # bfloat16 keeps 8 bits of mantissa: its rounding flips Adam's first steps for so many
        # weights that the distance below no longer tells global statistics from per-process ones.
        return
    single_checkpoint = read_checkpoint(tmp_path / "single" / "last.pt")
    torch.manual_seed(3)  # fit() draws the initial weights right after seeding
    initial = CellTissueModel(ModelConfig.from_dict(single_checkpoint["config"])).state_dict()
    moved = apart = 0.0
    for name, tensor in single_checkpoint["state"].items():
        if tensor.is_floating_point() and "running" not in name:
            moved += (tensor - initial[name]).norm().item() ** 2
            apart += (written[name] - tensor).norm().item() ** 2
    # Adam's first steps move each weight by about +-lr whatever its gradient's size, so float
    # rounding (summation order over processes, threads and batch shapes) flips the steps of
    # weights whose gradient is near zero. Measured as a fraction of the training displacement:
    # two single-process runs on 1 and 2 threads end 0.04 apart, this run about 0.2, and the same
    # run with per-process batch norm and Dice (DDP alone, without global statistics) 1.4.
    assert apart**0.5 < 0.5 * moved**0.5, (apart**0.5, moved**0.5)


def test_shards_of_a_global_batch_are_disjoint_and_cover_it():
    whole = list(ShardedBatchSampler(10, 4, seed=2))
    shards = [list(ShardedBatchSampler(10, 4, rank, 2, seed=2)) for rank in range(2)]
    assert len(whole) == 2 and all(len(batch) == 4 for batch in whole)
    for batch, first, second in zip(whole, *shards, strict=True):
        assert first + second == batch


def stop_reason_as_rank(rank, world_size, port, log_dir):
    """Rank 0 holds a history whose best epoch is 2 of 4, the others none (as in fit)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    from baseline_algorithm import train

    try:
        group = train.ProcessGroup(rank=rank, world_size=world_size, local_rank=rank)
        history = [{"epoch": e} for e in range(1, 5)] if rank == 0 else []
        best = {"epoch": 2} if rank == 0 else {"epoch": None}
        reasons = [
            train._stop_reason(
                TrainingOptions(data="d", out="o", patience=patience),
                time.perf_counter(),
                history,
                best,
                group,
                torch.device("cpu"),
            )
            for patience in (2, 3)
        ]
    finally:
        dist.destroy_process_group()
    Path(log_dir, f"reason{rank}.json").write_text(json.dumps(reasons))


def test_every_rank_stops_for_the_reason_rank_0_finds(tmp_path):
    mp.spawn(stop_reason_as_rank, args=(2, free_port(), str(tmp_path)), nprocs=2)
    for rank in range(2):
        assert json.loads((tmp_path / f"reason{rank}.json").read_text()) == ["patience", None]
