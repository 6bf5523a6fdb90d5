"""Turn examples into token ids and labels that train only on what the model should say.

Chat examples are rendered with the tokenizer's own chat template (ChatML when it has none),
so training sees exactly the prompt format serving will use. Which characters are trainable
is found by rendering growing prefixes of the conversation: the text an assistant turn adds
after the generation prompt, up to and including its end-of-turn marker, is trainable; the
rest is masked with -100. The rendered text is tokenized once and characters are mapped to
tokens through the offset mapping, so BPE merges across segment boundaries cannot shift the
mask.

Records are data, never markup: text in a record that spells a special token (``<|eot_id|>``
in a user's message) is tokenized as the plain characters it is, not as the control token,
so a dataset line cannot end a turn or open a new one. Only the template's own markers are
special tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import singledispatch
from itertools import pairwise
from typing import Any

from kubetune_trainer.datasets.formats import Completion, Conversation, Example, Text

IGNORE_INDEX = -100

# Used when a base model's tokenizer has no chat template; saved with the adapter so that
# serving renders prompts the same way.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class TemplateError(ValueError):
    """The chat template cannot render the conversation in a way that masks can follow."""


@dataclass(frozen=True)
class TokenizedExample:
    """Token ids and labels (``IGNORE_INDEX`` where no loss is taken) of equal length."""

    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def trainable_tokens(self) -> int:
        """Tokens that contribute to the loss (the first never does: nothing predicts it)."""
        return sum(label != IGNORE_INDEX for label in self.labels[1:])

    def truncated(self, max_length: int) -> TokenizedExample:
        """The first ``max_length`` tokens."""
        return TokenizedExample(self.input_ids[:max_length], self.labels[:max_length])


def ensure_chat_template(tokenizer: Any) -> bool:
    """Give the tokenizer a ChatML template if it has none; True when one was added."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = CHATML_TEMPLATE
    return True


def tokenize(example: Example, tokenizer: Any) -> TokenizedExample:
    """Ids and labels for one example; raises :class:`TemplateError` for unrenderable chats."""
    text, spans, append_eos = _render(example, tokenizer)
    if isinstance(example, Conversation):
        contents = [m.content for m in example.messages]
        input_ids, offsets = _encode_chat(text, contents, tokenizer)
    else:  # all of it is the record's text
        encoding = tokenizer(text, return_offsets_mapping=True, split_special_tokens=True)
        input_ids, offsets = list(encoding["input_ids"]), list(encoding["offset_mapping"])
    labels = [
        token if end > start and _inside(start, spans) else IGNORE_INDEX
        for token, (start, end) in zip(input_ids, offsets, strict=True)
    ]
    if append_eos and tokenizer.eos_token_id is not None:
        input_ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
    return TokenizedExample(input_ids, labels)


def _special_pattern(tokenizer: Any) -> re.Pattern[str] | None:
    """Matches the text of any special token, longest first."""
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    texts = sorted({t.content for t in decoder.values() if t.special and t.content}, key=len)
    return re.compile("|".join(re.escape(t) for t in reversed(texts))) if texts else None


def encode_chat_prompt(text: str, contents: Sequence[str], tokenizer: Any) -> list[int]:
    """Ids of a chat prompt the template rendered from messages with ``contents``, their
    text as data: the serving runtime encodes requests as training encoded the data."""
    return _encode_chat(text, contents, tokenizer)[0]


def _encode_chat(
    text: str, contents: Sequence[str], tokenizer: Any
) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids and character offsets of a rendered chat; special-token text inside a message's
    content is split into plain tokens, the template's markers stay special."""
    pattern = _special_pattern(tokenizer)
    literal = []
    if pattern is not None and any(pattern.search(content) for content in contents):
        literal = [
            match.span()
            for start, end in _content_spans(text, contents)
            for match in pattern.finditer(text, start, end)
        ]
    cuts = [0, *(i for span in literal for i in span), len(text)]
    ids: list[int] = []
    offsets: list[tuple[int, int]] = []
    for start, end in pairwise(cuts):
        if start == end:
            continue
        encoding = tokenizer(
            text[start:end],
            add_special_tokens=False,
            return_offsets_mapping=True,
            split_special_tokens=(start, end) in literal,
        )
        ids += encoding["input_ids"]
        offsets += [(a + start, b + start) for a, b in encoding["offset_mapping"]]
    return ids, offsets


def _content_spans(text: str, contents: Sequence[str]) -> list[tuple[int, int]]:
    """Where each message's content (as the template wrote it, maybe trimmed) is in ``text``."""
    spans, cursor = [], 0
    for content in contents:
        for needle in (content, content.strip()):
            found = text.find(needle, cursor) if needle else -1
            if found >= 0:
                spans.append((found, found + len(needle)))
                cursor = found + len(needle)
                break
    return spans


def _inside(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(start <= position < end for start, end in spans)


@singledispatch
def _render(example: Example, tokenizer: Any) -> tuple[str, list[tuple[int, int]], bool]:
    """The text, its trainable character spans, and whether to append end-of-sequence."""
    raise TypeError(f"unsupported example {type(example).__name__}")


@_render.register
def _render_text(example: Text, tokenizer: Any) -> tuple[str, list[tuple[int, int]], bool]:
    return example.text, [(0, len(example.text))], True


@_render.register
def _render_completion(
    example: Completion, tokenizer: Any
) -> tuple[str, list[tuple[int, int]], bool]:
    text = example.prompt + example.completion
    return text, [(len(example.prompt), len(text))], True


@_render.register
def _render_conversation(
    example: Conversation, tokenizer: Any
) -> tuple[str, list[tuple[int, int]], bool]:
    messages = [{"role": m.role, "content": m.content} for m in example.messages]
    text = _apply(tokenizer, messages, generation_prompt=False)
    spans = []
    for index, message in enumerate(example.messages):
        if message.role != "assistant" or not message.trainable:
            continue
        before = _apply(tokenizer, messages[:index], generation_prompt=True)
        through = _apply(tokenizer, messages[: index + 1], generation_prompt=False)
        if not (through.startswith(before) and text.startswith(through)):
            raise TemplateError(
                "the chat template does not render a conversation as a prefix of its "
                "continuation, so assistant turns cannot be located for the loss mask"
            )
        spans.append((len(before), len(through)))
    return text, spans, False


def _apply(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
    try:
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
    except Exception as exc:  # templates raise anything, including jinja errors
        raise TemplateError(f"the chat template rejects the conversation: {exc}") from exc
