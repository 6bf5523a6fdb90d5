"""Start, watch and stop the cluster's processes by PID.

Every process gets its own session (so a Ctrl-C in the caller's terminal does not reach it)
and a log file beside the cluster state. ``stop`` checks that a PID still runs the binary we
started before signalling it, so a recycled PID is never killed.
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
) -> int:
    """Start ``argv`` detached, appending its output to ``log``; return its PID."""
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
    return proc.pid


def runs(pid: int, binary: str) -> bool:
    """True when ``pid`` is alive and is running ``binary`` (not a recycled PID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # A zombie (state Z) has exited; only its parent's wait() is missing.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and bool(cmdline) and cmdline[0].decode(errors="replace") == binary


def stop(pid: int, binary: str, *, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, the process ``pid`` if it still is ours."""
    if not runs(pid, binary):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not runs(pid, binary):
            _reap(pid)
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    while runs(pid, binary):
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
