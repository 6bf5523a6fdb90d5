"""The FastAPI application: the routers, their error formats, and the runtime's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from kubetune_server import admin_api, health, openai_api
from kubetune_server.admin_api import AdminError
from kubetune_server.errors import ModelUnavailableError
from kubetune_server.openai_api import OpenAIError
from kubetune_server.runtime import Runtime
from kubetune_server.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """An app serving ``settings.model``; the model loads in the background once it starts."""
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="kubetune reference runtime", lifespan=lifespan)
    app.state.runtime = runtime
    app.include_router(openai_api.router)
    app.include_router(admin_api.router)
    app.include_router(health.router)

    @app.exception_handler(OpenAIError)
    async def openai_error(_: Request, exc: OpenAIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(AdminError)
    async def admin_error(_: Request, exc: AdminError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(ModelUnavailableError)
    async def unavailable(_: Request, exc: ModelUnavailableError) -> JSONResponse:
        return OpenAIError(503, str(exc), type="service_unavailable").response()

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        """OpenAI answers a malformed body with 400 and its error format."""
        fields = [".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors()]
        message = "; ".join(
            f"{f}: {e.get('msg')}" for f, e in zip(fields, exc.errors(), strict=True)
        )
        return OpenAIError(400, message, param=fields[0] if fields else None).response()

    return app
