"""The runtime refuses a manifest naming files outside the adapter's directory before it
reads or writes any of them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from kubetune.artifacts import digest
from kubetune_server.config import AdapterSource
from kubetune_server.errors import AdapterRefusedError
from kubetune_server.fetching import AdapterFetcher
from kubetune_server.settings import AdapterSettings, ModelSettings, Settings


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "../../outside/weights"])
def test_a_manifest_path_outside_the_adapter_is_refused(tmp_path: Path, path: str) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (tmp_path / "x").write_bytes(b"secret")  # what ../x would reach
    manifest = {
        "run_id": "r",
        "base_model": {"name": "org/base", "revision": "main"},
        "lora": {"r": 8},
        "files": [{"path": path, "sha256": hashlib.sha256(b"secret").hexdigest(), "size": 6}],
        "trainer_version": "1",
        "created_at": "2026-01-01T00:00:00Z",
    }
    data = json.dumps(manifest).encode()
    (adapter / "manifest.json").write_bytes(data)
    fetcher = AdapterFetcher(
        Settings(
            model=ModelSettings(name="org/base", revision="main"),
            adapters=AdapterSettings(cache_dir=tmp_path / "cache"),
        )
    )

    with pytest.raises(AdapterRefusedError) as caught:
        fetcher.fetch(AdapterSource(version="v1", uri=str(adapter), digest=digest(data)))

    assert caught.value.reason == "ManifestInvalid"
    assert repr(path) in caught.value.message
