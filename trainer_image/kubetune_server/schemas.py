"""OpenAI request bodies, as far as the reference runtime honours them.

Unknown fields are ignored, as OpenAI-compatible servers commonly do, so clients written for
OpenAI work unchanged. Fields that would change the *meaning* of a response and that the
runtime cannot honour (``n`` > 1, ``echo``, ``logprobs``, tools) are refused with 400 rather
than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kubetune_server.decoding import SamplingParams

Stop = Annotated[str, Field(min_length=1)] | Annotated[list[str], Field(max_length=4)] | None


class StreamOptions(BaseModel):
    """OpenAI ``stream_options``."""

    include_usage: bool = False


class SamplingRequest(BaseModel):
    """Fields shared by both endpoints."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=256)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: Literal[1] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Stop = None
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)
    user: str | None = Field(None, max_length=256)
    logprobs: None = None

    def sampling(self, max_tokens: int) -> SamplingParams:
        """The decoding parameters of this request."""
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return SamplingParams(max_tokens, self.temperature, self.top_p, self.seed, stop)

    @property
    def include_usage(self) -> bool:
        """Whether a streamed response ends with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(SamplingRequest):
    """``POST /v1/completions``."""

    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)]
    max_tokens: int | None = Field(16, ge=1)
    echo: Literal[False] = False

    @property
    def text(self) -> str:
        """The prompt (a one-element list is accepted as the prompt)."""
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class TextPart(BaseModel):
    """A text part of a message's content."""

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One chat message; content parts other than text are refused."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def as_template_input(self) -> dict[str, str]:
        """The message as chat templates expect it (``developer`` is OpenAI's new ``system``)."""
        content = (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": content}


class ChatCompletionRequest(SamplingRequest):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: None = None

    @model_validator(mode="after")
    def _one_limit(self) -> ChatCompletionRequest:
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            raise ValueError("set max_tokens or max_completion_tokens, not both")
        return self

    @property
    def limit(self) -> int | None:
        """The requested completion length; None: as long as the context allows."""
        return self.max_completion_tokens or self.max_tokens
