"""Start one training process per GPU (and join other nodes) when the pod has several.

The operator runs ``kubetune-train train`` once per pod, whatever the GPU count; this module
turns that into ``torchrun`` with one worker per visible GPU (``KUBETUNE_NPROC_PER_NODE``
overrides it, e.g. for CPU workers), and, for multi-node jobs, the rendezvous the operator
describes in ``NNODES``, ``NODE_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. The launcher
then exits 3 when a worker failed for a reason a retry would meet again, as a single
process would, so the Job's pod failure policy still works.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from kubetune_trainer.errors import PERMANENT

EXIT_PERMANENT = 3
_LAUNCHED = "LOCAL_RANK"  # set by torchrun in every worker


def plan_launch(env: Mapping[str, str], visible_gpus: int, argv: Sequence[str]) -> list[str] | None:
    """The torchrun command for this pod, or None when one process is right."""
    if _LAUNCHED in env:
        return None
    nproc = int(env.get("KUBETUNE_NPROC_PER_NODE") or max(visible_gpus, 1))
    nnodes = int(env.get("NNODES", "1"))
    if nproc == 1 and nnodes == 1:
        return None
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    if nnodes > 1:
        command += [
            f"--nnodes={nnodes}",
            f"--node_rank={env['NODE_RANK']}",
            f"--master_addr={env['MASTER_ADDR']}",
            f"--master_port={env.get('MASTER_PORT', '29500')}",
        ]
    else:
        command += ["--standalone"]
    return [*command, "-m", "kubetune_trainer.cli", *argv]


def exit_code(returncode: int, termination_path: Path) -> int:
    """0 on success; 3 when the workers' summary names a permanent reason; else 1."""
    if returncode == 0:
        return 0
    try:
        summary = json.loads(termination_path.read_text())
    except (OSError, ValueError):
        return 1
    return EXIT_PERMANENT if summary.get("reason") in PERMANENT else 1


def launch(command: list[str], termination_path: Path) -> int:
    """Run the workers, passing SIGTERM on to them, and map their outcome to an exit code."""
    workers = subprocess.Popen(command)
    signal.signal(signal.SIGTERM, lambda signum, frame: workers.send_signal(signum))
    return exit_code(workers.wait(), termination_path)
