"""A hostile manifest is refused with a reason whose message fits in a condition."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from kubetune.api import Reason
from kubetune.storage.s3 import ArtifactStore, StorageError


class OneObject:
    """An S3 client that answers every get_object with the same bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.data)}


def _manifest(paths: list[str]) -> bytes:
    files = [{"path": p, "sha256": "0" * 64, "size": 1} for p in paths]
    return json.dumps(
        {
            "run_id": "r",
            "base_model": {},
            "lora": {},
            "files": files,
            "trainer_version": "1",
            "created_at": "2026-01-01T00:00:00Z",
        }
    ).encode()


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "a\x00b"])
def test_a_file_outside_the_prefix_makes_the_manifest_invalid(path: str) -> None:
    with pytest.raises(StorageError) as caught:
        ArtifactStore(OneObject(_manifest([path]))).load_manifest("s3://b/run/adapter/")
    assert caught.value.reason == Reason.MANIFEST_INVALID
    assert repr(path) in caught.value.message


def test_the_message_stays_short_for_thousands_of_bad_entries() -> None:
    data = _manifest([f"../{i}" for i in range(5000)])
    with pytest.raises(StorageError) as caught:
        ArtifactStore(OneObject(data)).load_manifest("s3://b/run/adapter/")
    assert caught.value.reason == Reason.MANIFEST_INVALID
    assert len(caught.value.message) < 2200
