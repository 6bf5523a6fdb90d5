"""The admin API: read and change the desired adapters and routes of a running server.

It edits the same :class:`~kubetune_server.config.ServingConfig` the config file holds, so
both are one contract; whichever wrote last wins (the file is re-applied only when its
content changes). In Kubernetes the controller writes the ConfigMap; the API is for tools,
tests and runtimes without a mounted config. With an admin token set, every call needs
``Authorization: Bearer <token>``.

Calls that change adapters wait (up to ``timeout`` seconds) for the change to be in service
and answer 200 with the state, 422 with the reason when the adapter was refused (it stays
listed as Failed until removed or replaced), or 202 when it is still loading.

    GET    /v1/admin/state                    desired, applied, every adapter's state
    PUT    /v1/admin/config                   replace the whole config
    POST   /v1/admin/adapters                 add (or replace) one adapter version
    DELETE /v1/admin/adapters/{version}       unload one version (and drop it from routes)
    PUT    /v1/admin/routes/{name}            set a served name's weights {version: weight}
    DELETE /v1/admin/routes/{name}            stop serving a name
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from kubetune_server.config import AdapterSource, ServingConfig, Weights
from kubetune_server.registry import AdapterRegistry, AdapterState
from kubetune_server.runtime import runtime_of


class AdminError(Exception):
    """An admin call that cannot be done as asked."""

    def __init__(self, status: int, message: str, *, state: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": {"message": message}}
        if state is not None:
            self.body["state"] = state

    def response(self) -> JSONResponse:
        """The error as an HTTP response."""
        return JSONResponse(self.body, status_code=self.status)


def _authorized(request: Request) -> None:
    token = runtime_of(request).settings.serving.admin_token
    if token is None:
        return
    given = request.headers.get("authorization", "")
    if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise AdminError(401, "the admin API needs Authorization: Bearer <admin token>")


router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(_authorized)])
Timeout = Annotated[float, Query(ge=0, le=3600, description="Seconds to wait for the change.")]


def _registry(request: Request) -> AdapterRegistry:
    return runtime_of(request).require_registry()


@router.get("/state")
async def get_state(request: Request) -> dict[str, Any]:
    """Desired and applied config, adapters with their state and reasons, routes."""
    return _registry(request).status()


@router.put("/config")
async def put_config(config: ServingConfig, request: Request, timeout: Timeout = 0) -> JSONResponse:
    """Replace the desired config; 200 once applied within ``timeout``, else 202."""
    registry = _registry(request)
    serial = _stage(registry, config)
    applied = await registry.wait_applied(serial, timeout)
    return JSONResponse(registry.status(), status_code=200 if applied else 202)


@router.post("/adapters")
async def add_adapter(
    source: AdapterSource, request: Request, timeout: Timeout = 300
) -> JSONResponse:
    """Load one adapter version (replacing one of the same name whose source differs)."""
    registry = _registry(request)
    serial = _stage(registry, registry.desired.with_adapter(source))

    def refused() -> bool:
        record = registry.record(source.version)
        return record is not None and record.state == AdapterState.FAILED

    await registry.wait_until(lambda: registry.is_applied(serial) or refused(), timeout)
    record = registry.record(source.version)
    state = record.to_json() if record else {}
    if refused():
        message = f"adapter {source.version} refused: {state['reason']}: {state['message']}"
        raise AdminError(422, message, state=state)
    return JSONResponse(state, status_code=200 if registry.is_applied(serial) else 202)


@router.delete("/adapters/{version}")
async def remove_adapter(version: str, request: Request, timeout: Timeout = 60) -> JSONResponse:
    """Stop serving ``version`` and unload it once its in-flight requests finish."""
    registry = _registry(request)
    if registry.record(version) is None:
        raise AdminError(404, f"adapter {version} is not loaded or desired")
    serial = _stage(registry, registry.desired.without_adapter(version))
    applied = await registry.wait_applied(serial, timeout)
    return JSONResponse(registry.status(), status_code=200 if applied else 202)


@router.put("/routes/{name}")
async def put_route(
    name: str, weights: Weights, request: Request, timeout: Timeout = 60
) -> JSONResponse:
    """Split ``name`` between versions by weight, e.g. {"support-bot-v3": 90, "…-v4": 10}."""
    return await _change_route(request, name, weights, timeout)


@router.delete("/routes/{name}")
async def remove_route(name: str, request: Request, timeout: Timeout = 60) -> JSONResponse:
    """Stop serving ``name`` (its versions stay loaded)."""
    if name not in _registry(request).desired.routes:
        raise AdminError(404, f"no route {name}")
    return await _change_route(request, name, None, timeout)


async def _change_route(
    request: Request, name: str, weights: dict[str, int] | None, timeout: float
) -> JSONResponse:
    registry = _registry(request)
    try:
        config = registry.desired.with_route(name, weights)
    except ValidationError as exc:
        raise AdminError(422, _first_error(exc)) from exc
    serial = _stage(registry, config)
    applied = await registry.wait_applied(serial, timeout)
    return JSONResponse(registry.status(), status_code=200 if applied else 202)


def _stage(registry: AdapterRegistry, config: ServingConfig) -> int:
    try:
        return registry.set_desired(config)
    except ValueError as exc:
        raise AdminError(422, str(exc)) from exc


def _first_error(exc: ValidationError) -> str:
    return "; ".join(str(e["msg"]) for e in exc.errors())
