"""Hashing bytes on their way: a digest only when every byte of the object was hashed once,
in order, as it is on disk; anything else leaves the caller to hash the file itself."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kubetune_trainer.hashing import FileDigest, HashingReader, HashingWriter, hash_file

DATA = bytes(range(256)) * 40 + b"tail"
EXPECTED = FileDigest(hashlib.sha256(DATA).hexdigest(), len(DATA))


def reader(tmp_path: Path) -> HashingReader:
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    return HashingReader(path.open("rb"))


def writer(tmp_path: Path) -> HashingWriter:
    return HashingWriter((tmp_path / "out.bin").open("w+b", buffering=0))


def write_at(target: HashingWriter, offset: int, data: bytes) -> None:
    target.seek(offset)
    target.write(data)


def test_a_reader_hashes_what_it_reads_in_parts_after_sizing_the_file(tmp_path):
    body = reader(tmp_path)
    body.seek(0, os.SEEK_END)  # s3transfer learns the size this way, then goes back
    assert body.tell() == len(DATA)
    body.seek(0)
    parts = []
    while part := body.read(1000):
        parts.append(part)
    assert b"".join(parts) == DATA
    assert body.digest() == EXPECTED


def test_a_reader_that_reads_twice_or_skips_vouches_for_nothing(tmp_path):
    again = reader(tmp_path)
    again.read(1000)
    again.seek(0)
    again.read()
    assert again.digest() is None

    skipped = reader(tmp_path)
    skipped.seek(10)
    skipped.read()
    assert skipped.digest() is None


def test_a_reader_fills_buffers_like_a_file(tmp_path):
    body, buffer = reader(tmp_path), bytearray(len(DATA) + 10)
    assert body.readinto(buffer) == len(DATA)
    assert bytes(buffer[: len(DATA)]) == DATA
    assert body.digest() == EXPECTED


@settings(max_examples=50, deadline=None)
@given(cuts=st.lists(st.integers(1, len(DATA) - 1), unique=True, max_size=8), seed=st.randoms())
def test_parts_written_in_any_order_hash_as_the_whole_file(tmp_path_factory, cuts, seed):
    bounds = [0, *sorted(cuts), len(DATA)]
    parts = list(itertools.pairwise(bounds))
    seed.shuffle(parts)
    target = writer(tmp_path_factory.mktemp("w"))
    for start, end in parts:
        write_at(target, start, DATA[start:end])
    assert target.digest() == EXPECTED


def test_a_gap_never_written_vouches_for_nothing(tmp_path):
    target = writer(tmp_path)
    write_at(target, 0, DATA[:100])
    write_at(target, 200, DATA[200:])
    assert target.digest() is None


def test_rewriting_hashed_bytes_vouches_for_nothing(tmp_path):
    """A retried part writes again where the prefix was already hashed: hash the file after."""
    target = writer(tmp_path)
    write_at(target, 0, DATA)
    write_at(target, 100, b"X" * 10)
    assert target.digest() is None


def test_a_file_changed_behind_the_writer_vouches_for_nothing(tmp_path):
    target = writer(tmp_path)
    write_at(target, 0, DATA)
    with (tmp_path / "out.bin").open("ab") as other:
        other.write(b"appended")
    assert target.digest() is None


def test_hash_file_reads_to_the_end():
    assert hash_file(io.BytesIO(DATA)) == EXPECTED


def test_a_long_range_written_ahead_is_read_back_in_several_reads(tmp_path):
    """Catching up reads a range longer than the read-back buffer in pieces, all hashed."""
    data = os.urandom(3 * (1 << 20) + 12345)
    target = writer(tmp_path)
    write_at(target, 4096, data[4096:])
    write_at(target, 0, data[:4096])
    assert target.digest() == FileDigest(hashlib.sha256(data).hexdigest(), len(data))
