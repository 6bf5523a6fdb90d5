"""``kubetune``: the operator process, and the CRD generator.

kubetune operator            run the operator (configured by KUBETUNE_* variables)
kubetune crd generate        write crds/ from the API models (--check: fail if stale)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import threading
from typing import Any

from kubetune.settings import Settings

log = logging.getLogger("kubetune")


def run_operator(settings: Settings) -> int:
    import kopf
    from prometheus_client import start_http_server

    import kubetune.controllers  # noqa: F401 - registers the handlers
    from kubetune import k8s
    from kubetune.health import serve_probes
    from kubetune.leader import LeaseElector

    process = settings.process
    # kopf's logging setup covers the root logger too: one format for every line.
    kopf.configure(
        verbose=os.environ.get("KUBETUNE_LOG_LEVEL", "INFO").upper() == "DEBUG",
        log_format=kopf.LogFormat.JSON if process.log_format == "json" else kopf.LogFormat.FULL,
    )
    stop, ready, alive = threading.Event(), threading.Event(), threading.Event()
    alive.set()
    standby = threading.Event()
    serve_probes(
        process.health_port, live=alive.is_set, ready=lambda: ready.is_set() or standby.is_set()
    )
    start_http_server(process.metrics_port)

    keeper: threading.Thread | None = None
    if process.leader_election:
        elector = LeaseElector(
            k8s.api(),
            namespace=process.lease_namespace,
            name=process.lease_name,
            identity=process.identity,
        )
        standby.set()
        if not elector.acquire(stop):
            return 0
        standby.clear()

        def lost() -> None:
            log.error("leadership lost; stopping so that a restart rejoins as standby")
            alive.clear()
            stop.set()

        keeper = elector.keep(lost, stop)

    @kopf.on.cleanup()
    async def raise_stop_flag(**_: Any) -> None:
        """Raised on a signal too: kopf's own waiter for the flag would otherwise hold the
        exit for its 5 s grace for leftover tasks."""
        stop.set()

    async def operate() -> None:
        try:
            await kopf.operator(
                standalone=True,
                clusterwide=not process.namespaces,
                namespaces=process.namespaces,
                stop_flag=stop,
                ready_flag=ready,
            )
        finally:
            # kopf waits for a threading stop flag in an executor thread. An operator ended
            # by SIGTERM or an error must raise it too, or the loop's shutdown joins that
            # thread forever and the pod only ends with the kubelet's SIGKILL.
            stop.set()

    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(operate())
    if keeper is not None:
        keeper.join()  # it releases the lease
    return 1 if not alive.is_set() else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubetune", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("operator", help="run the operator")
    crd = commands.add_parser("crd", help="generate or check the CRDs", add_help=False)
    crd.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "crd":
        from kubetune.crd.__main__ import main as crd_main

        return crd_main(args.rest)
    return run_operator(Settings.from_env())


if __name__ == "__main__":
    sys.exit(main())
