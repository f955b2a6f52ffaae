"""Distributed data parallel set-up for ``torchrun`` and MPI launches.

``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK (and MASTER_ADDR/PORT). Under ``mpirun``/``srun``
with MPI the ranks come from OMPI_COMM_WORLD_* (Open MPI) or PMI_RANK/PMI_SIZE and
MPI_LOCALRANKID (MPICH, Intel MPI); MASTER_ADDR defaults to rank 0's host name (shared with
mpi4py when available, else 127.0.0.1: one node) and MASTER_PORT to 29500.

Backend: NCCL on GPUs (one per process: cuda:LOCAL_RANK), gloo on CPUs.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
from typing import List, Mapping, MutableMapping, Optional

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

DEFAULT_PORT = "29500"
#: (rank, size, local rank) variables of MPI launchers, in order of preference.
MPI_VARIABLES = (
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
)


@dataclasses.dataclass
class Context:
    """Where this process stands: rank, world size, local rank, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only process that writes files and logs progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launch_environment(environ: Optional[MutableMapping[str, str]] = None) -> MutableMapping[str, str]:
    """Fill RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT from an MPI
    launcher's variables when ``torchrun``'s are absent. Changes and returns ``environ``
    (default ``os.environ``)."""
    environ = os.environ if environ is None else environ
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        for rank_key, size_key, local_key in MPI_VARIABLES:
            if rank_key in environ and size_key in environ:
                environ["RANK"], environ["WORLD_SIZE"] = environ[rank_key], environ[size_key]
                environ.setdefault("LOCAL_RANK", environ.get(local_key, environ[rank_key]))
                break
    if int(environ.get("WORLD_SIZE", "1")) > 1:
        environ.setdefault("LOCAL_RANK", "0")
        environ.setdefault("LOCAL_WORLD_SIZE", environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", environ.get("MPI_LOCALNRANKS", "1")))
        environ.setdefault("MASTER_PORT", DEFAULT_PORT)
        if "MASTER_ADDR" not in environ:
            environ["MASTER_ADDR"] = _rank0_host()
    return environ


def _rank0_host() -> str:
    """Rank 0's host name via mpi4py (multi-node MPI launches), else 127.0.0.1."""
    try:
        from mpi4py import MPI
    except ImportError:
        return "127.0.0.1"
    return MPI.COMM_WORLD.bcast(socket.gethostname(), root=0)


def setup(environ: Optional[Mapping[str, str]] = None) -> Context:
    """Join the process group of a ``torchrun``/MPI launch (a no-op for one process) and pick this
    process's device (cuda:LOCAL_RANK on GPUs)."""
    environ = launch_environment(environ)
    world_size = int(environ.get("WORLD_SIZE", "1"))
    rank = int(environ.get("RANK", "0"))
    local_rank = int(environ.get("LOCAL_RANK", "0"))
    local_world_size = int(environ.get("LOCAL_WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    owns_group = world_size > 1 and not dist.is_initialized()
    if owns_group:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                **({"device_id": device} if device.type == "cuda" else {}))
        log.debug("rank %d/%d joined the %s process group (%s:%s)", rank, world_size, backend,
                  environ.get("MASTER_ADDR"), environ.get("MASTER_PORT"))
    return Context(rank, world_size, local_rank, local_world_size, device, owns_group)


def teardown(context: Context, synchronise: bool = True) -> None:
    """Leave the process group :func:`setup` joined (one made by the caller is left alone).

    synchronise: wait for every process first (after a normal end; gloo aborts a process that
    leaves while another still uses the group)."""
    if context.owns_group and dist.is_initialized():
        if synchronise:
            dist.barrier()
        dist.destroy_process_group()


def gather(context: Context, *arrays: np.ndarray) -> List[np.ndarray]:
    """Concatenation, in rank order, of each array over all processes (every process gets it)."""
    if not context.distributed:
        return list(arrays)
    gathered: List[Optional[tuple]] = [None] * context.world_size
    dist.all_gather_object(gathered, tuple(arrays))
    return [np.concatenate([part[k] for part in gathered]) for k in range(len(arrays))]


def all_sum(context: Context, value: float) -> float:
    """Sum of a number over all processes."""
    if not context.distributed:
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64,
                          device=context.device if context.device.type == "cuda" else "cpu")
    dist.all_reduce(tensor)
    return float(tensor.item())


def broadcast_flag(context: Context, flag: bool) -> bool:
    """Rank 0's value of a flag, on every process."""
    return all_sum(context, float(flag) if context.is_main else 0.0) > 0.5
