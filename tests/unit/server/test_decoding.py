"""Token-by-token text release: stop strings across tokens, partial characters, sampling."""

from __future__ import annotations

import pytest
import torch

from kubetune_server.decoding import SamplingParams, TextStream, pick_token


class ByteTokenizer:
    """Each token id stands for a byte string, like a byte-level BPE vocabulary."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return b"".join(self.pieces[i] for i in ids).decode("utf-8", errors="replace")


def run(pieces: list[bytes], stop: tuple[str, ...] = ()) -> tuple[list[str], str, bool]:
    """Push every piece; the released chunks, the final flush, whether a stop hit."""
    stream = TextStream(ByteTokenizer(pieces), stop)
    chunks = []
    for token in range(len(pieces)):
        chunks.append(stream.push(token))
        if stream.stopped:
            break
    return chunks, stream.finish(), stream.stopped


def test_plain_text_is_released_token_by_token():
    chunks, tail, stopped = run([b"Hel", b"lo", b" world"])
    assert chunks == ["Hel", "lo", " world"]
    assert (tail, stopped) == ("", False)


def test_a_stop_string_split_across_tokens_ends_the_text_before_it():
    chunks, tail, stopped = run([b"The answer", b" is 4", b"\n\n", b"Q:", b" more"], ("\n\nQ:",))
    assert stopped
    assert "".join(chunks) + tail == "The answer is 4"
    assert chunks[2] == ""  # "\n\n" was held back: it could have started the stop string


def test_held_back_text_is_released_when_it_turns_out_not_to_stop():
    chunks, tail, stopped = run([b"a\n", b"\nb", b"c"], ("\n\nQ:",))
    assert not stopped
    assert chunks == ["a", "\n\nb", "c"]
    assert tail == ""


def test_held_back_text_is_flushed_at_the_end():
    chunks, tail, _ = run([b"x", b"\n"], ("\n\n",))
    assert chunks == ["x", ""]
    assert tail == "\n"


def test_a_partial_utf8_character_waits_for_its_last_byte():
    euro = "€".encode()
    chunks, tail, _ = run([b"cost ", euro[:2], euro[2:], b"5"])
    assert chunks == ["cost ", "", "€", "5"]
    assert tail == ""


def test_the_earliest_of_several_stop_strings_wins():
    chunks, _, stopped = run([b"one. two! three"], ("!", "."))
    assert stopped
    assert chunks == ["one"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampling_with_a_seed_repeats(seed):
    logits = torch.randn(50, generator=torch.Generator().manual_seed(99))
    params = SamplingParams(temperature=1.0, seed=seed)

    def draw() -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return [pick_token(logits, params, generator) for _ in range(20)]

    assert draw() == draw()


def test_temperature_zero_is_greedy():
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    assert pick_token(logits, SamplingParams(temperature=0), torch.Generator()) == 1


def test_a_small_top_p_keeps_only_the_most_likely_token():
    logits = torch.tensor([1.0, 4.0, 3.9, 0.5])
    generator = torch.Generator().manual_seed(0)
    picks = {pick_token(logits, SamplingParams(top_p=0.01), generator) for _ in range(30)}
    assert picks == {1}


def test_top_p_keeps_the_nucleus():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    generator = torch.Generator().manual_seed(0)
    picks = {pick_token(logits, SamplingParams(top_p=0.75), generator) for _ in range(300)}
    assert picks == {0, 1}
