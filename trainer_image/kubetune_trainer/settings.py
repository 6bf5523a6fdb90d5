"""How one trainer process runs: what the pod (or a workstation) decides, not the spec.

Each setting has a command-line flag and an environment variable, so the operator can set
them on the container without rewriting its arguments.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubetune.api import OverLength

DEFAULT_TERMINATION_PATH = "/dev/termination-log"


@dataclass(frozen=True)
class RunSettings:
    """Settings of one run; see :func:`from_environment` for the variables."""

    workdir: Path
    """Local scratch: downloaded model and data, checkpoints before upload."""
    run_id: str | None = None
    """Sub-prefix of output.uri for this run; None: derived from the spec."""
    termination_path: Path = Path(DEFAULT_TERMINATION_PATH)
    """Where the summary for the FineTuneJob's status is written when the process ends."""
    metrics_port: int | None = None
    """Port of the Prometheus endpoint on the main process; None: no endpoint."""
    progress_interval: float = 10.0
    """Seconds between progress reports to S3; the API promises at most 15."""
    over_length: OverLength | None = None
    """Overrides the spec's dataset.overLength (records over maxSeqLength tokens)."""

    @classmethod
    def from_environment(cls) -> RunSettings:
        """Defaults from ``KUBETUNE_WORKDIR``, ``KUBETUNE_RUN_ID``,
        ``KUBETUNE_TERMINATION_PATH``, ``KUBETUNE_METRICS_PORT``,
        ``KUBETUNE_PROGRESS_INTERVAL`` and ``KUBETUNE_OVER_LENGTH``."""
        env = os.environ
        port = env.get("KUBETUNE_METRICS_PORT")
        return cls(
            workdir=Path(
                env.get("KUBETUNE_WORKDIR") or Path(tempfile.gettempdir()) / "kubetune-trainer"
            ),
            run_id=env.get("KUBETUNE_RUN_ID") or None,
            termination_path=Path(env.get("KUBETUNE_TERMINATION_PATH", DEFAULT_TERMINATION_PATH)),
            metrics_port=int(port) if port else None,
            progress_interval=float(env.get("KUBETUNE_PROGRESS_INTERVAL", "10")),
            over_length=OverLength(env["KUBETUNE_OVER_LENGTH"])
            if env.get("KUBETUNE_OVER_LENGTH")
            else None,
        )
