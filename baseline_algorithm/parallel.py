"""Data-parallel training pieces: the process group, sharded global batches, global statistics.

A run on N processes follows the single-process run with the same global batch: each global
batch holds the same pairs (:class:`ShardedBatchSampler`), batch norm normalises with the
statistics of the global batch (:class:`GlobalBatchNorm2d`, or PyTorch's ``SyncBatchNorm`` on
CUDA), the Dice loss sums its statistics over the processes (:func:`global_sum`), and DDP averages
the gradients. Everything here is the identity for one process.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

__all__ = [
    "GlobalBatchNorm2d",
    "ProcessGroup",
    "ShardedBatchSampler",
    "global_sum",
    "join_process_group",
    "synchronise_batch_norm",
]


class ShardedBatchSampler(Sampler[list[int]]):
    """Global batches of a seeded permutation, each split into disjoint per-process shards.

    Every epoch shuffles the indices with a generator seeded from ``(seed, epoch)`` and cuts them
    into ``len(dataset) // global_batch`` global batches (an incomplete last batch is dropped: a
    batch of one pair breaks batch norm after ASPP's global pooling). Process ``rank`` of
    ``world_size`` gets the ``rank``-th slice of ``global_batch / world_size`` indices of each.
    Unlike ``DistributedSampler``, which deals indices round-robin, a global batch is therefore
    the same set of pairs for any number of processes, and a run on N processes follows the
    single-process run with the same global batch.
    """

    def __init__(
        self, size: int, global_batch: int, rank: int = 0, world_size: int = 1, seed: int = 0
    ):
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not a multiple of {world_size}")
        self.size = size
        self.global_batch = global_batch
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size // self.global_batch

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        shard = self.global_batch // self.world_size
        for start in range(0, len(self) * self.global_batch, self.global_batch):
            first = start + self.rank * shard
            yield order[first : first + shard]


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in a data-parallel run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owned: bool = False  # whether fit() created the process group and must destroy it

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def join_process_group(device: str) -> tuple[ProcessGroup, str]:
    """Join the process group ``torchrun`` describes in the environment, if any.

    Parameters
    ----------
    device : str
        A resolved device (:func:`baseline_algorithm.runtime.resolve_device`): ``cpu``,
        ``cuda`` or ``cuda:N``.

    Returns
    -------
    group : ProcessGroup
    device : str
        The device this process uses: ``device``, except ``cuda`` under torchrun, which becomes
        ``cuda:LOCAL_RANK``. NCCL runs on CUDA, gloo on the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return ProcessGroup(), device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        device = f"cuda:{local_rank}"
    on_cuda = device.startswith("cuda")
    owned = not dist.is_initialized()
    if owned:
        if on_cuda:
            torch.cuda.set_device(torch.device(device))
        # Other ranks wait while rank 0 validates: allow for a long validation.
        dist.init_process_group("nccl" if on_cuda else "gloo", timeout=datetime.timedelta(hours=2))
    group = ProcessGroup(dist.get_rank(), dist.get_world_size(), local_rank, owned)
    return group, device


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose backward all-reduces the gradient: every process's loss depends on
    every process's inputs."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        total = gradient.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total


def global_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over the processes, differentiable (its gradient is summed back)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor
    return _SumOverProcesses.apply(tensor)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over the global batch of a data-parallel run, on any device and backend.

    In training, the per-channel sums of each process's shard are summed over the processes
    (differentiably), so every process normalises with the mean and variance of the global
    batch and updates the running statistics as one process would. The parameters and buffers
    are those of ``nn.BatchNorm2d``; PyTorch's ``SyncBatchNorm`` does the same on CUDA only.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(input)
        # The statistics, the running buffers and the normalisation are float32 whatever the
        # input's dtype: under bfloat16 / float16 autocast the input is reduced precision, and
        # the buffers are float32. The output keeps the input's dtype, as batch norm's does.
        values = input.float()
        # Two passes, as batch norm computes it: the global mean, then the squared deviations.
        count = torch.full((1,), values.numel() / values.shape[1], device=values.device)
        sums = global_sum(torch.cat([values.sum(dim=(0, 2, 3)), count]))
        count = sums[-1]
        mean = sums[:-1] / count
        centred = values - mean.view(1, -1, 1, 1)
        variance = global_sum((centred * centred).sum(dim=(0, 2, 3))) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                unbiased = variance * count / (count - 1)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        shape = (1, -1, 1, 1)
        normalised = centred * torch.rsqrt(variance.view(shape) + self.eps)
        return (normalised * self.weight.view(shape) + self.bias.view(shape)).to(input.dtype)


def synchronise_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every batch norm computing global-batch statistics (in place on the CPU)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = GlobalBatchNorm2d
    return model
