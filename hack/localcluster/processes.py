"""Start, watch and stop the cluster's processes by PID.

Every process gets its own session (so a Ctrl-C in the caller's terminal does not reach it)
and a log file beside the cluster state. A process is identified by its PID *and* its start
time (from /proc), so ``stop`` never signals a recycled PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[int, int]:
    """Start ``argv`` detached, appending its output to ``log``; return (PID, start time)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [os.fspath(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    started = start_time(proc.pid)
    if started is None:
        raise RuntimeError(f"{argv[0]} exited at once; see {log}")
    return proc.pid, started


def start(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log: Path,
    what: str,
    ready: Callable[[], bool] | None = None,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[int, int]:
    """Spawn ``argv`` and wait until ``ready`` holds; (PID, start time).

    If it exits or times out first, or the wait is interrupted, the process is stopped before
    the error propagates, so a server that never came up is never left running.
    """
    pid, started = spawn(argv, log=log, env=env, cwd=cwd)
    if ready is None:
        return pid, started
    try:
        wait_until(ready, what=what, timeout=timeout, alive=lambda: runs(pid, started), log=log)
    except BaseException:
        stop(pid, started)
        raise
    return pid, started


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if it does not exist.

    Unlike the command line, which is briefly empty while a process execs, the start time is
    fixed at fork, so (pid, start time) names one process for its whole life.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[-1].split()[19])


def runs(pid: int, started: int) -> bool:
    """True when the process (pid, started) is alive (not exited, not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[0] != "Z" and int(fields[19]) == started


def stop(pid: int, started: int, *, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, the process (pid, started) if alive."""
    if not runs(pid, started):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not runs(pid, started):
            _reap(pid)
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    while runs(pid, started):
        time.sleep(0.05)
    _reap(pid)


def _reap(pid: int) -> None:
    # Only our own children can be reaped; for a PID started by another process this is a no-op.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    alive: Callable[[], bool] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``check`` until it holds; fail early, with the log's tail, if the process died."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if alive is not None and not alive():
            raise RuntimeError(f"{what} exited during start-up{_tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s{_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path | None, lines: int = 25) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log}:\n" + "\n".join(text)


def http_ok(
    url: str, *, ca: Path | None = None, token: str | None = None, verify: bool = True
) -> bool:
    """True when GET ``url`` answers 200."""
    context = None
    if url.startswith("https://"):
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
        return False
