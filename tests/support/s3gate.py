"""A TCP relay in front of an S3 server that can stop the world at one chosen request.

Fault-injection tests need an S3 outage to begin at an exact moment of a run (while a
checkpoint is being uploaded, while the adapter is), which watching the bucket from outside
cannot catch: a small upload is over before the next poll. Clients reach S3 through the
gate; ``arm(pattern)`` makes it hold the first request whose bytes match (it is never
forwarded) and set ``tripped``. The test then stops the S3 server and calls ``release()``,
which drops the held connection, as a server that went away does. Everything else is
relayed untouched, so while S3 is down clients see refused connections through the gate.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading

_TAIL = 1024


class S3Gate:
    """Relays 127.0.0.1:<port> to 127.0.0.1:<upstream>; see the module for ``arm``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.tripped = threading.Event()
        self.held: bytes = b""
        """The request line that tripped the gate."""
        self._pattern: re.Pattern[bytes] | None = None
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, name="s3gate", daemon=True).start()

    def arm(self, pattern: bytes) -> None:
        """Hold the next request whose bytes match ``pattern`` (a regular expression)."""
        with self._lock:
            self._pattern = re.compile(pattern)
            self.tripped.clear()
            self._released.clear()

    def release(self) -> None:
        """Drop the held request's connection; the gate relays everything again."""
        self._released.set()

    def close(self) -> None:
        self._released.set()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(downstream,), daemon=True).start()

    def _relay(self, downstream: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:  # the server is down: so is the gate, for this client
            downstream.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=self._copy, args=(upstream, downstream, False), daemon=True).start()
        self._copy(downstream, upstream, True)

    def _copy(self, source: socket.socket, target: socket.socket, inspect: bool) -> None:
        tail = b""
        try:
            while data := source.recv(65536):
                if inspect and self._trips(tail + data):
                    self._released.wait()
                    return
                target.sendall(data)
                tail = (tail + data)[-_TAIL:]
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _trips(self, data: bytes) -> bool:
        with self._lock:
            if self._pattern is None or (match := self._pattern.search(data)) is None:
                return False
            self._pattern = None
            self.held = data[match.start() : match.start() + 300].split(b"\r\n")[0]
            self.tripped.set()
            return True
