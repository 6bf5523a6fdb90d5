"""Turn examples into token ids and labels that train only on what the model should say.

Chat examples are rendered with the tokenizer's own chat template (ChatML when it has none),
so training sees exactly the prompt format serving will use. Which characters are trainable
is found by rendering growing prefixes of the conversation: the text an assistant turn adds
after the generation prompt, up to and including its end-of-turn marker, is trainable; the
rest is masked with -100. The rendered text is tokenized once and characters are mapped to
tokens through the offset mapping, so BPE merges across segment boundaries cannot shift the
mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatch
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
    encoding = tokenizer(
        text, add_special_tokens=not isinstance(example, Conversation), return_offsets_mapping=True
    )
    input_ids = list(encoding["input_ids"])
    labels = [
        token if end > start and _inside(start, spans) else IGNORE_INDEX
        for token, (start, end) in zip(input_ids, encoding["offset_mapping"], strict=True)
    ]
    if append_eos and tokenizer.eos_token_id is not None:
        input_ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
    return TokenizedExample(input_ids, labels)


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
