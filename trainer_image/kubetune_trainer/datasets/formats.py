"""The record formats a dataset may use, and their conversion to one of three example shapes.

Every supported format is parsed into a :data:`Example`: a :class:`Conversation` (OpenAI chat
``messages``, and Alpaca ``instruction``/``input``/``output`` turned into one user and one
assistant turn), a :class:`Completion` (``prompt``/``completion``), or :class:`Text`. A parser
reports every problem it finds in a record, not only the first, so a user fixes a file in one
pass. Parsers are registered by format in :data:`PARSERS`; ``auto`` is resolved by
:func:`detect_format` on each record and a majority vote over the file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kubetune_trainer.datasets.issues import Issue, Problem, error

ROLES = ("system", "user", "assistant")


class RecordFormat(StrEnum):
    """A concrete record format (``auto`` is not one: it is resolved to one of these)."""

    CHAT = "chat"
    INSTRUCTION = "instruction"
    COMPLETION = "completion"
    TEXT = "text"


@dataclass(frozen=True)
class Message:
    """One turn; ``trainable`` is False for an assistant turn with OpenAI's ``weight: 0``."""

    role: str
    content: str
    trainable: bool = True


@dataclass(frozen=True)
class Conversation:
    """Turns rendered with the tokenizer's chat template; loss only on assistant turns."""

    messages: tuple[Message, ...]


@dataclass(frozen=True)
class Completion:
    """Raw text: loss only on the completion (and the end-of-sequence token after it)."""

    prompt: str
    completion: str


@dataclass(frozen=True)
class Text:
    """Plain text for continued pre-training: loss on every token."""

    text: str


Example = Conversation | Completion | Text
Parsed = tuple[Example | None, list[Issue]]

# The field that identifies each format, in the order auto-detection tries them.
_SIGNATURES: tuple[tuple[str, RecordFormat], ...] = (
    ("messages", RecordFormat.CHAT),
    ("instruction", RecordFormat.INSTRUCTION),
    ("prompt", RecordFormat.COMPLETION),
    ("text", RecordFormat.TEXT),
)


def detect_format(record: Mapping[str, Any]) -> RecordFormat | None:
    """The format whose identifying field the record has (a null counts as absent)."""
    for key, fmt in _SIGNATURES:
        if record.get(key) is not None:
            return fmt
    return None


def resolve_format(records: Sequence[Any]) -> RecordFormat | None:
    """The most common detected format of the object records; None when none is recognised."""
    counts = Counter(
        fmt
        for record in records
        if isinstance(record, Mapping) and (fmt := detect_format(record)) is not None
    )
    return counts.most_common(1)[0][0] if counts else None


def parse_record(line: int, record: Any, fmt: RecordFormat) -> Parsed:
    """Parse ``record`` as ``fmt``, or report why it is not a valid record of that format."""
    if not isinstance(record, Mapping):
        return None, [
            error(
                line, Problem.NOT_AN_OBJECT, f"a record must be a JSON object, got {_kind(record)}"
            )
        ]
    detected = detect_format(record)
    if detected is None:
        expected = ", ".join(repr(key) for key, _ in _SIGNATURES)
        return None, [
            error(line, Problem.UNKNOWN_FORMAT, f"the record has none of the fields {expected}")
        ]
    if detected != fmt:
        return None, [
            error(
                line,
                Problem.MIXED_FORMAT,
                f"the record is in {detected} format but the dataset is {fmt}",
            )
        ]
    return PARSERS[fmt](line, record)


def _parse_chat(line: int, record: Mapping[str, Any]) -> Parsed:
    messages = record.get("messages")
    if not isinstance(messages, list):
        return None, [
            error(line, Problem.WRONG_TYPE, f"'messages' must be a list, got {_kind(messages)}")
        ]
    if not messages:
        return None, [error(line, Problem.EMPTY_CONVERSATION, "'messages' is empty")]
    issues: list[Issue] = []
    parsed = [_parse_message(line, index, m, issues) for index, m in enumerate(messages)]
    turns = [m for m in parsed if m is not None]
    if len(turns) == len(parsed):
        issues.extend(check_role_order(line, [m.role for m in turns]))
    if issues:
        return None, issues
    return Conversation(tuple(turns)), []


def _parse_message(line: int, index: int, message: Any, issues: list[Issue]) -> Message | None:
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        issues.append(
            error(
                line,
                Problem.MESSAGE_NOT_AN_OBJECT,
                f"{where} must be an object, got {_kind(message)}",
            )
        )
        return None
    before = len(issues)
    role = _required_string(line, f"{where}.role", message.get("role"), issues)
    if role is not None and role not in ROLES:
        issues.append(
            error(
                line,
                Problem.UNKNOWN_ROLE,
                f"{where}.role {role!r} is not one of {', '.join(ROLES)}",
            )
        )
    content = _message_content(line, where, message.get("content"), issues)
    trainable = _weight(line, where, message.get("weight", 1), issues)
    if len(issues) > before or role is None or content is None:
        return None
    return Message(role, content, trainable)


def _message_content(line: int, where: str, content: Any, issues: list[Issue]) -> str | None:
    """A string, or OpenAI content parts of type ``text`` joined together."""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not (isinstance(part, Mapping) and part.get("type") == "text"):
                kind = part.get("type") if isinstance(part, Mapping) else _kind(part)
                issues.append(
                    error(
                        line,
                        Problem.UNSUPPORTED_CONTENT,
                        f"{where}.content has a {kind!r} part; only text is supported",
                    )
                )
                return None
            texts.append(part.get("text"))
        if not all(isinstance(text, str) for text in texts):
            issues.append(
                error(
                    line,
                    Problem.WRONG_TYPE,
                    f"{where}.content has a text part without a string 'text'",
                )
            )
            return None
        content = "".join(texts)
    return _required_string(line, f"{where}.content", content, issues)


def _weight(line: int, where: str, weight: Any, issues: list[Issue]) -> bool:
    if weight not in (0, 1) or isinstance(weight, bool):
        issues.append(error(line, Problem.WRONG_TYPE, f"{where}.weight must be 0 or 1"))
    return weight != 0


def check_role_order(line: int, roles: Sequence[str]) -> list[Issue]:
    """System first (if at all), then user/assistant alternating from a user turn to an answer."""
    issues = [
        error(
            line,
            Problem.SYSTEM_NOT_FIRST,
            f"messages[{index}] is a system message; only the first message may be one",
        )
        for index, role in enumerate(roles)
        if role == "system" and index > 0
    ]
    start = 1 if roles[0] == "system" else 0
    dialogue = [(i, role) for i, role in enumerate(roles) if role != "system" and i >= start]
    expected = "user"
    for index, role in dialogue:
        if role != expected:
            what = (
                "must start with a user turn"
                if index == start
                else f"has two {role} turns in a row at messages[{index}]"
            )
            issues.append(error(line, Problem.ROLE_ORDER, f"the conversation {what}"))
            break
        expected = "assistant" if role == "user" else "user"
    if "assistant" not in roles:
        issues.append(
            error(
                line,
                Problem.NO_ASSISTANT_TURN,
                "the conversation has no assistant turn to learn from",
            )
        )
    elif roles[-1] != "assistant":
        issues.append(
            error(
                line,
                Problem.ENDS_WITHOUT_ASSISTANT,
                f"the conversation ends with a {roles[-1]} turn, not an assistant turn",
            )
        )
    return issues


def _parse_instruction(line: int, record: Mapping[str, Any]) -> Parsed:
    issues: list[Issue] = []
    instruction = _required_string(line, "instruction", record.get("instruction"), issues)
    output = _required_string(line, "output", record.get("output"), issues)
    context = record.get("input")
    if context is not None and not isinstance(context, str):
        issues.append(
            error(line, Problem.WRONG_TYPE, f"'input' must be a string, got {_kind(context)}")
        )
    if issues or instruction is None or output is None:
        return None, issues
    prompt = f"{instruction}\n\n{context}" if context and context.strip() else instruction
    return Conversation((Message("user", prompt), Message("assistant", output))), []


def _parse_completion(line: int, record: Mapping[str, Any]) -> Parsed:
    issues: list[Issue] = []
    prompt = record.get("prompt")
    if not isinstance(prompt, str):
        issues.append(
            error(line, Problem.WRONG_TYPE, f"'prompt' must be a string, got {_kind(prompt)}")
        )
    completion = _required_string(line, "completion", record.get("completion"), issues)
    if issues or not isinstance(prompt, str) or completion is None:
        return None, issues
    return Completion(prompt, completion), []


def _parse_text(line: int, record: Mapping[str, Any]) -> Parsed:
    issues: list[Issue] = []
    text = _required_string(line, "text", record.get("text"), issues)
    return (Text(text) if text is not None else None), issues


def _required_string(line: int, field: str, value: Any, issues: list[Issue]) -> str | None:
    """A present, non-blank string, or an issue saying which of those it is not."""
    if value is None:
        issues.append(error(line, Problem.MISSING_FIELD, f"missing field '{field}'"))
    elif not isinstance(value, str):
        issues.append(
            error(line, Problem.WRONG_TYPE, f"'{field}' must be a string, got {_kind(value)}")
        )
    elif not value.strip():
        issues.append(error(line, Problem.EMPTY_FIELD, f"'{field}' is empty"))
    else:
        return value
    return None


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    names: dict[type, str] = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    if value is None:
        return "null"
    return next(
        (name for kind, name in names.items() if isinstance(value, kind)), type(value).__name__
    )


PARSERS: dict[RecordFormat, Callable[[int, Mapping[str, Any]], Parsed]] = {
    RecordFormat.CHAT: _parse_chat,
    RecordFormat.INSTRUCTION: _parse_instruction,
    RecordFormat.COMPLETION: _parse_completion,
    RecordFormat.TEXT: _parse_text,
}
