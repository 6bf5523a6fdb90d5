"""Container processes and readiness probes for the node agent.

A container runs as a process in its own session (its own process group), so signals reach
everything it started and a Ctrl-C in the agent's terminal reaches none of it. The process is
reaped by a waiter thread that first waits *without* reaping: while the agent holds the lock,
an unreaped process keeps its PID (and so its process group ID), so ``killpg`` can never hit
a recycled group.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from localcluster import processes


class LocalProcess:
    """One run of one container; ``on_exit`` is called (from a thread) once it has exited.

    Not ``processes.spawn``: that drops its Popen, and the pod status needs the exit code,
    which only the process that keeps the child (and reaps it) ever learns.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str,
        log: Path,
        on_exit: Callable[[], None],
    ) -> None:
        self._lock = threading.Lock()
        with open(log, "ab") as out:
            self._proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        self.pid = self._proc.pid
        self.started = processes.start_time(self.pid)
        self._on_exit = on_exit
        threading.Thread(target=self._wait, name=f"wait-{self.pid}", daemon=True).start()

    def _wait(self) -> None:
        os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        with self._lock:
            self._proc.wait()
        self._on_exit()

    @property
    def exit_code(self) -> int | None:
        """None while it runs; else the exit status, 128 + N when killed by signal N."""
        code = self._proc.returncode
        if code is None:
            return None
        return 128 - code if code < 0 else code

    def signal_group(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process's whole group, unless it has already been reaped."""
        with self._lock:
            if self._proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, sig)


class Readiness:
    """A container's readiness: its probe, run every ``periodSeconds``, with the kubelet's
    thresholds; a container without a probe is ready as soon as it runs."""

    def __init__(
        self,
        probe: Mapping[str, Any] | None,
        container: Mapping[str, Any],
        *,
        env: Mapping[str, str],
        cwd: str,
    ) -> None:
        self.probe, self._container, self._env, self._cwd = probe, container, env, cwd
        self.next_at = time.monotonic() + (probe or {}).get("initialDelaySeconds", 0)
        self._successes = self._failures = 0

    def check(self, ready: bool) -> bool:
        """Probe if it is time to; return whether the container is ready now."""
        if self.probe is None:
            return True
        if time.monotonic() < self.next_at:
            return ready
        self.next_at = time.monotonic() + self.probe.get("periodSeconds", 10)
        if probe_ok(self.probe, self._container, env=self._env, cwd=self._cwd):
            self._successes, self._failures = self._successes + 1, 0
            return ready or self._successes >= self.probe.get("successThreshold", 1)
        self._successes, self._failures = 0, self._failures + 1
        return ready and self._failures < self.probe.get("failureThreshold", 3)


def _port(probe_port: Any, container: Mapping[str, Any]) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(probe_port, int) or str(probe_port).isdigit():
        return int(probe_port)
    for port in container.get("ports") or []:
        if port.get("name") == probe_port:
            return int(port["containerPort"])
    raise ValueError(f"no container port named {probe_port!r}")


def probe_ok(
    probe: Mapping[str, Any], container: Mapping[str, Any], *, env: Mapping[str, str], cwd: str
) -> bool:
    """Run one httpGet, tcpSocket or exec probe against the local process, as the kubelet does:
    HTTP 200-399 succeeds; TCP succeeds when a connection opens; exec when it exits 0."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            spec = probe["httpGet"]
            host, port = spec.get("host") or "127.0.0.1", _port(spec["port"], container)
            if spec.get("scheme", "HTTP").upper() == "HTTPS":
                connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, port, timeout=timeout, context=ssl._create_unverified_context()
                )
            else:
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
            headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
            try:
                connection.request("GET", spec.get("path") or "/", headers=headers)
                return 200 <= connection.getresponse().status < 400
            finally:
                connection.close()
        if "tcpSocket" in probe:
            spec = probe["tcpSocket"]
            address = (spec.get("host") or "127.0.0.1", _port(spec["port"], container))
            with socket.create_connection(address, timeout=timeout):
                return True
        if "exec" in probe:
            result = subprocess.run(
                probe["exec"]["command"],
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
            return result.returncode == 0
    except (OSError, ValueError, http.client.HTTPException, subprocess.TimeoutExpired):
        return False
    return False


def port_free(port: int) -> bool:
    """True when nothing on this machine listens on TCP ``port`` (any address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def read_tail(path: Path, size: int = 4096) -> bytes:
    """The last ``size`` bytes of a log file (empty when there is none)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            return handle.read()
    except OSError:
        return b""
