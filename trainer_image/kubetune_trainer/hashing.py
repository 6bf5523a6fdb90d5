"""sha256 of a file's bytes while they travel, so hashing is no phase of its own.

An upload hashes exactly the bytes it sends (:class:`HashingReader`); a download hashes the
bytes it writes as soon as they extend the file's contiguous written prefix
(:class:`HashingWriter`). Either reports a digest only when it can vouch for every byte of
the object, and ``None`` otherwise, so a caller falls back to hashing the file on disk.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import BinaryIO

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    """What a manifest says of a file's bytes."""

    sha256: str
    size: int


class _Positioned(io.RawIOBase):
    """A raw stream over ``handle`` that seeks where it does: s3transfer seeks to learn a
    file's size and to place parts."""

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__()
        self._handle = handle
        self._sha = hashlib.sha256()
        self._hashed = 0

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)


class HashingReader(_Positioned):
    """A read-only view of ``handle`` that hashes what is read, in order, from the start.

    Seeking is allowed (s3transfer seeks to the end to learn the size and back), but a read
    anywhere but where the hashed bytes end makes :meth:`digest` refuse to vouch.
    """

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__(handle)
        self._in_order = handle.tell() == 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._handle.tell() != self._hashed:
            self._in_order = False
        data = self._handle.read(size)
        self._sha.update(data)
        self._hashed += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def digest(self) -> FileDigest | None:
        """The bytes read, if they were read once, in order, from the start."""
        return FileDigest(self._sha.hexdigest(), self._hashed) if self._in_order else None


class HashingWriter(_Positioned):
    """A file written at arbitrary offsets (parts arrive out of order) whose contiguous
    prefix is hashed as it grows: bytes written where the prefix ends are hashed as they are
    written, bytes written beyond it are read back from the file once the gap before them
    is filled. A write into the already hashed prefix (a retried part) spoils the digest."""

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__(handle)  # unbuffered and readable: what was written is read back
        self._fd = handle.fileno()
        self._ahead: list[tuple[int, int]] = []  # written ranges beyond the prefix
        self._spoiled = False
        self._buffer: bytearray | None = None  # read-back buffer, reused: no fresh pages

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        start = self._handle.tell()
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += self._handle.write(view[written:]) or 0
        end = start + written
        if start < self._hashed:
            self._spoiled = True
        elif start == self._hashed:
            self._sha.update(view)
            self._hashed = end
            self._catch_up()
        else:
            self._ahead.append((start, end))
        return written

    def _catch_up(self) -> None:
        """Hash, from the file, the ranges written ahead that now join the prefix. Most of a
        multipart download arrives ahead of the prefix: reading it back into one reused
        buffer, rather than a new bytes object per read, spares the memory a fresh
        allocation faults in, page by page."""
        self._ahead.sort()
        while self._ahead and self._ahead[0][0] <= self._hashed:
            _, end = self._ahead.pop(0)
            if self._buffer is None:
                self._buffer = bytearray(_CHUNK)
            view = memoryview(self._buffer)
            while self._hashed < end:
                read = os.preadv(self._fd, [view[: end - self._hashed]], self._hashed)
                if not read:
                    self._spoiled = True
                    return
                self._sha.update(view[:read])
                self._hashed += read

    def digest(self) -> FileDigest | None:
        """The file's bytes, if every one was hashed exactly once, as it is now on disk."""
        size = os.fstat(self._fd).st_size
        if self._spoiled or self._ahead or self._hashed != size:
            return None
        return FileDigest(self._sha.hexdigest(), size)


def hash_file(handle: BinaryIO) -> FileDigest:
    """The digest of everything ``handle`` reads from its current position."""
    sha, size = hashlib.sha256(), 0
    while chunk := handle.read(_CHUNK):
        sha.update(chunk)
        size += len(chunk)
    return FileDigest(sha.hexdigest(), size)
