"""The OpenAI-compatible endpoints: /v1/models, /v1/completions and /v1/chat/completions.

Responses follow OpenAI's shapes, streams included (server-sent events ending in
``data: [DONE]``), so OpenAI SDKs and tools work against the runtime. ``model`` in a response
is the name the client asked for; which adapter version answered is in the
``X-Kubetune-Adapter-Version`` header (for a served name it is the weighted pick).
Errors use OpenAI's ``{"error": {"message", "type", "param", "code"}}`` body.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from kubetune_server.errors import ModelNotFoundError, ModelUnavailableError
from kubetune_server.generation import CLIENT_CLOSED, Generation, GenerationFailedError, Outcome
from kubetune_server.registry import Lease
from kubetune_server.runtime import Runtime, runtime_of
from kubetune_server.schemas import ChatCompletionRequest, CompletionRequest, SamplingRequest
from kubetune_trainer.datasets.tokenization import encode_chat_prompt

router = APIRouter(prefix="/v1", tags=["openai"])
VERSION_HEADER = "X-Kubetune-Adapter-Version"


class OpenAIError(Exception):
    """An error response in OpenAI's format."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # OpenAI's field name
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}

    def response(self) -> JSONResponse:
        """The error as an HTTP response."""
        return JSONResponse(self.body, status_code=self.status)


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    """Every requestable name: the base model, served names, adapter versions."""
    runtime = runtime_of(request)
    registry = runtime.require_registry()
    base = registry.base_name
    data = [
        {
            "id": name,
            "object": "model",
            "created": runtime.created,
            "owned_by": "kubetune",
            "root": name,
            "parent": None if name == base else base,
            "max_model_len": runtime.require_engine().max_length,
        }
        for name in registry.status()["models"]
    ]
    return {"object": "list", "data": data}


@router.post("/completions", response_model=None)
async def create_completion(body: CompletionRequest, request: Request) -> Response:
    """A text completion of ``prompt``."""
    runtime = runtime_of(request)
    started = time.perf_counter()
    lease = _acquire(runtime, body.model, body.user, "completions")

    def encode() -> list[int]:
        return list(runtime.require_engine().tokenizer(body.text).input_ids)

    generation = _start(runtime, lease, body, body.max_tokens, encode, "completions", started)
    ident, created = f"cmpl-{secrets.token_hex(12)}", int(time.time())

    def chunk(text: str, finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return _envelope(ident, "text_completion", created, body.model, [choice])

    def whole(text: str, outcome: Outcome) -> dict[str, Any]:
        return {**chunk(text, outcome.finish_reason), "usage": _usage(outcome)}

    return await _respond(generation, body, lease, chunk, whole, first=None)


@router.post("/chat/completions", response_model=None)
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
    """The assistant's reply to ``messages``, rendered with the model's chat template."""
    runtime = runtime_of(request)
    started = time.perf_counter()
    lease = _acquire(runtime, body.model, body.user, "chat_completions")

    def encode() -> list[int]:
        tokenizer = runtime.require_engine().tokenizer
        messages = [m.as_template_input() for m in body.messages]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        # Message text is data: "<|eot_id|>" in a user's message cannot forge a turn.
        return encode_chat_prompt(prompt, [m["content"] for m in messages], tokenizer)

    generation = _start(runtime, lease, body, body.limit, encode, "chat_completions", started)
    ident, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())

    def chunk(text: str, finish: str | None) -> dict[str, Any]:
        delta = {"content": text} if finish is None else {}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _envelope(ident, "chat.completion.chunk", created, body.model, [choice])

    def whole(text: str, outcome: Outcome) -> dict[str, Any]:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": outcome.finish_reason,
        }
        body_ = _envelope(ident, "chat.completion", created, body.model, [choice])
        return {**body_, "usage": _usage(outcome)}

    first = _envelope(
        ident,
        "chat.completion.chunk",
        created,
        body.model,
        [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
    )
    return await _respond(generation, body, lease, chunk, whole, first=first)


def _acquire(runtime: Runtime, model: str, user: str | None, endpoint: str) -> Lease:
    registry = runtime.require_registry()
    try:
        return registry.acquire(model, user=user)
    except ModelNotFoundError as exc:
        runtime.metrics.requests.labels("", "", endpoint, "404").inc()
        raise OpenAIError(404, str(exc), code="model_not_found", param="model") from exc
    except ModelUnavailableError as exc:
        runtime.metrics.requests.labels(model, "", endpoint, "503").inc()
        raise OpenAIError(
            503, str(exc), type="service_unavailable", code="model_not_loaded"
        ) from exc


def _start(
    runtime: Runtime,
    lease: Lease,
    body: SamplingRequest,
    requested: int | None,
    encode: Callable[[], list[int]],
    endpoint: str,
    started: float,
) -> Generation:
    """Tokenize, check the context length, and hand the request to the engine."""
    engine = runtime.require_engine()
    try:
        try:
            prompt_ids = encode()
        except Exception as exc:  # e.g. a chat template refusing the conversation
            raise OpenAIError(400, f"cannot build the prompt: {exc}", param="messages") from exc
        if not prompt_ids:
            raise OpenAIError(400, "the prompt is empty", param="prompt")
        room = engine.max_length - len(prompt_ids)
        if room <= 0 or (requested is not None and requested > room):
            raise OpenAIError(
                400,
                f"This model's maximum context length is {engine.max_length} tokens. However, "
                f"you requested {len(prompt_ids) + (requested or 1)} tokens "
                f"({len(prompt_ids)} in the prompt, {requested or 1} for the completion).",
                code="context_length_exceeded",
            )
    except OpenAIError as exc:
        lease.release()
        labels = (lease.target.requested, lease.label, endpoint, str(exc.status))
        runtime.metrics.requests.labels(*labels).inc()
        raise
    return Generation(
        engine=engine,
        lease=lease,
        metrics=runtime.metrics,
        endpoint=endpoint,
        prompt_ids=prompt_ids,
        params=body.sampling(requested or room),
        started=started,
    )


async def _respond(
    generation: Generation,
    body: SamplingRequest,
    lease: Lease,
    chunk: Callable[[str, str | None], dict[str, Any]],
    whole: Callable[[str, Outcome], dict[str, Any]],
    *,
    first: dict[str, Any] | None,
) -> Response:
    headers = {VERSION_HEADER: lease.label}
    if body.stream:
        events = _stream(generation, body, chunk, first)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    status = CLIENT_CLOSED
    try:
        text = await generation.text()
        status = 200
    except GenerationFailedError as exc:
        status = 500
        raise OpenAIError(500, str(exc), type="server_error") from exc
    finally:
        generation.close(status)
    assert generation.outcome is not None
    return JSONResponse(whole(text, generation.outcome), headers=headers)


async def _stream(
    generation: Generation,
    body: SamplingRequest,
    chunk: Callable[[str, str | None], dict[str, Any]],
    first: dict[str, Any] | None,
) -> AsyncIterator[str]:
    """Server-sent events, as OpenAI streams them."""
    status = CLIENT_CLOSED  # unless we get to the end
    try:
        if first is not None:
            yield _event(first)
        async for text in generation.chunks():
            if text:
                yield _event(chunk(text, None))
        outcome = generation.outcome
        assert outcome is not None
        yield _event(chunk("", outcome.finish_reason))
        if body.include_usage:
            usage = {**chunk("", None), "choices": [], "usage": _usage(outcome)}
            yield _event(usage)
        status = 200
        yield "data: [DONE]\n\n"
    except GenerationFailedError as exc:
        status = 500
        yield _event(OpenAIError(500, str(exc), type="server_error").body)
    finally:
        generation.close(status)


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


def _envelope(
    ident: str, kind: str, created: int, model: str, choices: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"id": ident, "object": kind, "created": created, "model": model, "choices": choices}


def _usage(outcome: Outcome) -> dict[str, int]:
    return {
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
    }
