"""torch.distributed in one place: process-group setup from torchrun's environment, sharding,
gathering validation rows exactly once, and the DDP wrapper. Single-process runs pass through.
"""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    return rank() == 0


# How long a collective waits for the slowest rank before failing. A dead rank is noticed sooner: the elastic
# agent stops the run within a second. This covers a rank that hangs; it must outlast the longest legitimate
# wait, a rank compiling (--compile) or writing a large checkpoint while the others wait. NCCL's own default.
COLLECTIVE_TIMEOUT_S = 600


def init_from_env(timeout_s: float = COLLECTIVE_TIMEOUT_S) -> bool:
    """Join the process group torchrun describes in the environment; False when not launched by it."""
    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return is_distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        if local_rank() >= torch.cuda.device_count():
            from .errors import KitError

            raise KitError(
                f"process {local_rank()} on this machine has no GPU of its own ({torch.cuda.device_count()} "
                f"visible); use --nproc {torch.cuda.device_count()} (torchrun: --nproc-per-node) or fewer"
            )
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return True


def shutdown() -> None:
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shard(indices: np.ndarray) -> np.ndarray:
    """This rank's disjoint slice of `indices` (no padding: the union over ranks is `indices` exactly)."""
    return np.asarray(indices)[rank() :: world_size()]


def gather_rows(indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every rank's (indices, rows) concatenated and sorted by index, on every rank."""
    if not is_distributed():
        return np.asarray(indices), rows
    parts: list = [None] * world_size()
    dist.all_gather_object(parts, (np.asarray(indices), rows))
    all_idx = np.concatenate([p[0] for p in parts])
    non_empty = [p[1] for p in parts if len(p[1])]
    all_rows = np.concatenate(non_empty) if non_empty else rows
    order = np.argsort(all_idx, kind="stable")
    return all_idx[order], all_rows[order]


def sum_tensor(values: torch.Tensor) -> torch.Tensor:
    if is_distributed():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # DDP registers the parameters that require gradients now: with a frozen backbone, the head's alone, so
    # every registered parameter gets a gradient each step (no unused-parameter search); fit wraps again on thawing
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank. DDP syncs them at the start of each
    training forward only, so after an epoch each rank holds the statistics of its own last batch; validation
    and rank 0's checkpoint must describe one model."""
    if is_distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


# What a collective raises when another rank died or stopped answering (gloo, NCCL, the store).
LOST_PEER_SIGNS = (
    "Connection closed by peer",
    "Connection reset by peer",
    "Broken pipe",
    "Timed out",
    "timed out",
    "NCCL communicator was aborted",
    "Socket Timeout",
)


def lost_peer_message(error: BaseException) -> str | None:
    """A one-line explanation when `error` is a collective failing because another rank is gone, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    if not isinstance(error, (dist.DistError, RuntimeError)) or not any(sign in str(error) for sign in LOST_PEER_SIGNS):
        return None
    return (
        f"rank {os.environ.get('RANK', '?')} lost contact with another process of this run (it failed, was "
        f"killed, or stopped answering for {COLLECTIVE_TIMEOUT_S}s); see that rank's error"
    )


def broadcast_object(value):
    """Rank 0's `value` on every rank (e.g. the run folder name, which holds a timestamp)."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
