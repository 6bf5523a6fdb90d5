"""Loss is taken only on what the model should learn to say, in every format."""

from __future__ import annotations

from typing import Any

import pytest

from kubetune_trainer.datasets.formats import (
    Completion,
    Conversation,
    Message,
    RecordFormat,
    Text,
    detect_format,
    parse_record,
)
from kubetune_trainer.datasets.tokenization import (
    CHATML_TEMPLATE,
    IGNORE_INDEX,
    TemplateError,
    ensure_chat_template,
    tokenize,
)


def trained_text(tokenizer: Any, example: Any) -> str:
    tokenized = tokenize(example, tokenizer)
    assert len(tokenized.input_ids) == len(tokenized.labels)
    kept = [label for label in tokenized.labels if label != IGNORE_INDEX]
    return tokenizer.decode(kept)


def test_only_assistant_turns_and_their_end_of_turn_are_trained(tokenizer):
    example = Conversation(
        (
            Message("system", "Be brief."),
            Message("user", "Sky?"),
            Message("assistant", "Blue."),
            Message("user", "Grass?"),
            Message("assistant", "Green."),
        )
    )

    assert trained_text(tokenizer, example) == "Blue.<|eot_id|>Green.<|eot_id|>"


def test_an_assistant_turn_with_weight_zero_is_not_trained(tokenizer):
    example = Conversation(
        (
            Message("user", "Sky?"),
            Message("assistant", "Red.", trainable=False),
            Message("user", "Really?"),
            Message("assistant", "Blue."),
        )
    )

    assert trained_text(tokenizer, example) == "Blue.<|eot_id|>"


def test_chat_ids_are_the_template_rendering_without_a_second_bos(tokenizer):
    example = Conversation((Message("user", "Sky?"), Message("assistant", "Blue.")))
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Blue."}],
        tokenize=False,
    )

    tokenized = tokenize(example, tokenizer)

    assert tokenizer.decode(tokenized.input_ids) == rendered
    assert tokenized.input_ids.count(tokenizer.bos_token_id) == 1


def test_completion_trains_on_the_completion_and_end_of_sequence(tokenizer):
    tokenized = tokenize(Completion("2+2=", " 4"), tokenizer)

    assert tokenized.input_ids[0] == tokenizer.bos_token_id
    assert tokenized.labels[0] == IGNORE_INDEX
    assert tokenizer.decode([t for t in tokenized.labels if t != IGNORE_INDEX]) == " 4<|eot_id|>"


def test_plain_text_trains_on_everything_but_the_bos(tokenizer):
    tokenized = tokenize(Text("Some text."), tokenizer)

    assert tokenized.labels[0] == IGNORE_INDEX
    assert tokenized.labels[1:] == tokenized.input_ids[1:]
    assert tokenized.input_ids[-1] == tokenizer.eos_token_id
    assert tokenized.trainable_tokens == len(tokenized) - 1


def test_a_tokenizer_without_template_gets_chatml(tokenizer):
    bare = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    bare.chat_template = None

    assert ensure_chat_template(bare) is True
    assert ensure_chat_template(bare) is False
    assert bare.chat_template == CHATML_TEMPLATE
    example = Conversation((Message("user", "Sky?"), Message("assistant", "Blue.")))
    assert trained_text(bare, example) == "Blue.<|im_end|>\n"


def test_a_template_that_is_not_prefix_stable_is_refused(tokenizer):
    odd = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    odd.chat_template = "{{ messages | length }}" + tokenizer.chat_template
    example = Conversation((Message("user", "Sky?"), Message("assistant", "Blue.")))

    with pytest.raises(TemplateError, match="prefix"):
        tokenize(example, odd)


@pytest.mark.parametrize(
    ("record", "fmt"),
    [
        ({"messages": []}, RecordFormat.CHAT),
        ({"instruction": "x", "output": "y"}, RecordFormat.INSTRUCTION),
        ({"prompt": "x", "completion": "y"}, RecordFormat.COMPLETION),
        ({"text": "x"}, RecordFormat.TEXT),
        ({"messages": None, "text": "x"}, RecordFormat.TEXT),
        ({"other": 1}, None),
    ],
)
def test_format_detection(record, fmt):
    assert detect_format(record) == fmt


def test_instruction_becomes_a_user_and_an_assistant_turn():
    example, issues = parse_record(
        1, {"instruction": "Translate.", "input": "chat", "output": "cat"}, RecordFormat.INSTRUCTION
    )

    assert issues == []
    assert example == Conversation(
        (Message("user", "Translate.\n\nchat"), Message("assistant", "cat"))
    )


def test_text_content_parts_are_joined():
    record = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "assistant", "content": "c"},
        ]
    }

    example, issues = parse_record(1, record, RecordFormat.CHAT)

    assert issues == []
    assert example.messages[0].content == "ab"
