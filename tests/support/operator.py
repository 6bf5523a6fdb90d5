"""Run the real operator (``kubetune operator``) as a process against the test cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from localcluster.processes import free_port, http_ok
from support.polling import eventually


class OperatorProcess:
    """One operator replica; ``kill()`` is a SIGKILL, as a node failure would deliver."""

    def __init__(
        self, kubeconfig: Path, log: Path, *, identity: str = "replica-0", **env: str
    ) -> None:
        self.kubeconfig, self.log, self.identity = kubeconfig, log, identity
        self.health_port = free_port()
        self.env = {
            "KUBECONFIG": str(kubeconfig),
            "KUBETUNE_HEALTH_PORT": str(self.health_port),
            "KUBETUNE_METRICS_PORT": str(free_port()),
            "KUBETUNE_PROGRESS_INTERVAL": "1",
            "KUBETUNE_LOG_FORMAT": "text",
            "KUBETUNE_LEADER_ELECTION": "false",
            "POD_NAME": identity,
            **env,
        }
        self.metrics_port = int(self.env["KUBETUNE_METRICS_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True) -> OperatorProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kubetune.cli", "operator"],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if wait_ready:
            try:
                eventually(self.ready, timeout=60, what=f"operator {self.identity} ready")
            except BaseException:
                self.kill()  # not left running (and loading the machine) after the failure
                raise
        return self

    def ready(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, self.tail()
        return http_ok(f"http://127.0.0.1:{self.health_port}/readyz")

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as response:
            return str(response.read().decode())

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
