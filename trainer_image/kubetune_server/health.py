"""Kubernetes probes and the Prometheus endpoint, each answering one question.

``/startupz``
    Has the base model loaded? 503 while it loads, 500 if it cannot (the reason is in the
    body). A startup probe on this keeps liveness from killing a slow first load.
``/livez``
    Should the container be restarted? Only when startup failed or the engine thread died;
    never because of an adapter, a slow request or S3 — restarting would not fix those.
``/readyz``
    Should the pod get traffic? Once the first config has applied: every adapter desired at
    startup is loaded (or refused, and reported). The body lists every adapter's state.
``/metrics``
    Prometheus exposition of :mod:`kubetune_server.metrics`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kubetune_server.runtime import runtime_of

router = APIRouter(tags=["health"])


def _answer(status: int, **body: Any) -> JSONResponse:
    return JSONResponse({"status": "ok" if status == 200 else "fail", **body}, status_code=status)


@router.get("/startupz")
async def startupz(request: Request) -> JSONResponse:
    """200 once the model is loaded and the engine runs."""
    runtime = runtime_of(request)
    if runtime.startup_error:
        return _answer(500, reason=runtime.startup_error)
    if runtime.registry is None:
        return _answer(503, reason="the base model is loading")
    return _answer(200)


@router.get("/livez")
async def livez(request: Request) -> JSONResponse:
    """200 unless startup failed or the engine thread is gone."""
    runtime = runtime_of(request)
    if runtime.startup_error:
        return _answer(500, reason=runtime.startup_error)
    if runtime.engine is not None and not runtime.engine.alive:
        return _answer(500, reason="the engine thread has stopped")
    return _answer(200)


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 when the desired adapters of the first config are settled; the state in the body."""
    runtime = runtime_of(request)
    registry = runtime.registry
    if registry is None:
        return _answer(503, reason=runtime.startup_error or "the base model is loading")
    state = registry.status()
    if registry.ready:
        return _answer(200, **state)
    waiting = [a["version"] for a in state["adapters"] if a["state"] in ("Pending", "Loading")]
    if waiting:
        reason = f"waiting for adapters: {', '.join(waiting)}"
    else:
        reason = registry.config_error or "waiting for a config"
    return _answer(503, reason=reason, **state)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    registry = runtime_of(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
