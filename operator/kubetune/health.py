"""Liveness and readiness endpoints for the kubelet (the metrics port is separate).

/healthz answers 200 while the process serves and its lease (if any) is held or awaited;
/readyz answers 200 once kopf watches the cluster, or while this replica waits as standby,
so that a rolling update of two replicas can proceed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve_probes(
    port: int, *, live: Callable[[], bool], ready: Callable[[], bool]
) -> ThreadingHTTPServer:
    checks = {"/healthz": live, "/livez": live, "/readyz": ready}

    class Probes(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            check = checks.get(self.path.split("?")[0])
            ok = check is not None and check()
            body = b"ok\n" if ok else b"not ok\n"
            self.send_response(200 if ok else (404 if check is None else 503))
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            """Probes every few seconds would flood the operator's log."""

    server = ThreadingHTTPServer(("0.0.0.0", port), Probes)
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
    return server
