"""Which process this is when torchrun (or accelerate) starts several, and waiting for the rest.

The process group is started early, before anything is downloaded, so that one process per
node fetches the model and data while the others wait; transformers' Trainer then reuses the
same group. On CPU the backend is gloo, on GPUs NCCL.
"""

from __future__ import annotations

import os


def world_size() -> int:
    """Processes in the run (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's index in the run."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's index on its node."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """The one process that publishes progress, checkpoints' markers and the artifact."""
    return rank() == 0


def is_local_main() -> bool:
    """The one process per node that downloads to the node's disk."""
    return local_rank() == 0


def init() -> None:
    """Join the process group when started by a launcher; a no-op for one process."""
    import torch
    import torch.distributed as dist

    if world_size() == 1 or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def barrier() -> None:
    """Wait for every process; a no-op for one process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def device() -> str:
    """Where this process's model lives: its GPU, or the CPU."""
    import torch

    return f"cuda:{local_rank()}" if torch.cuda.is_available() else "cpu"
