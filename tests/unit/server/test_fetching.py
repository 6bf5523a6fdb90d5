"""Adapter verification on local directories: what is accepted and why others are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubetune_server.config import AdapterSource
from kubetune_server.errors import AdapterRefusedError
from kubetune_server.fetching import AdapterFetcher
from kubetune_server.settings import AdapterSettings, ModelSettings, Settings
from support.loras import write_manifest

BASE = {"name": "org/base", "revision": "abc123"}


def fetcher(tmp_path: Path, *, max_rank: int | None = 16) -> AdapterFetcher:
    return AdapterFetcher(
        Settings(
            model=ModelSettings(name="org/base", revision="abc123"),
            adapters=AdapterSettings(cache_dir=tmp_path / "cache", max_lora_rank=max_rank),
        )
    )


def artifact(
    directory: Path, *, r: int = 8, config_r: int | None = None, base=BASE, **config
) -> str:
    """A fake adapter (PEFT config + opaque weights) with a manifest; returns its digest."""
    directory.mkdir(parents=True)
    peft_config = {"peft_type": "LORA", "r": config_r or r, "lora_alpha": 16, **config}
    (directory / "adapter_config.json").write_text(json.dumps(peft_config))
    (directory / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 8)
    return write_manifest(directory, base=base, lora={"r": r, "alpha": 16})


def source(directory: Path, digest: str | None = None) -> AdapterSource:
    return AdapterSource(version="bot-v1", uri=str(directory), digest=digest)


def refusal(tmp_path: Path, src: AdapterSource, **kwargs) -> AdapterRefusedError:
    with pytest.raises(AdapterRefusedError) as caught:
        fetcher(tmp_path, **kwargs).fetch(src)
    return caught.value


def test_a_matching_adapter_verifies(tmp_path):
    digest = artifact(tmp_path / "a")
    verified = fetcher(tmp_path).fetch(source(tmp_path / "a", digest))
    assert (verified.digest, verified.rank, verified.directory) == (digest, 8, tmp_path / "a")
    assert verified.size_bytes == 2048 + len((tmp_path / "a/adapter_config.json").read_bytes())


def test_without_a_pinned_digest_the_files_are_still_checked(tmp_path):
    artifact(tmp_path / "a")
    (tmp_path / "a/adapter_model.safetensors").write_bytes(b"tampered")
    error = refusal(tmp_path, source(tmp_path / "a"))
    assert error.reason == "DigestMismatch"
    assert "(8 bytes), manifest says" in error.message


def test_another_manifest_than_the_pinned_one_is_refused(tmp_path):
    artifact(tmp_path / "a")
    error = refusal(tmp_path, source(tmp_path / "a", "sha256:" + "0" * 64))
    assert error.reason == "DigestMismatch"
    assert "expected sha256:000" in error.message


def test_a_changed_file_of_the_same_size_is_refused(tmp_path):
    artifact(tmp_path / "a")
    path = tmp_path / "a/adapter_model.safetensors"
    path.write_bytes(bytes(reversed(path.read_bytes())))
    assert "sha256" in refusal(tmp_path, source(tmp_path / "a")).message


def test_a_missing_manifest_is_refused(tmp_path):
    artifact(tmp_path / "a")
    (tmp_path / "a/manifest.json").unlink()
    error = refusal(tmp_path, source(tmp_path / "a"))
    assert (error.reason, "no manifest.json") == ("ManifestInvalid", error.message[:16])


def test_a_manifest_that_is_not_one_is_refused(tmp_path):
    artifact(tmp_path / "a")
    (tmp_path / "a/manifest.json").write_text('{"files": []}')
    error = refusal(tmp_path, source(tmp_path / "a"))
    assert error.reason == "ManifestInvalid"
    assert "missing" in error.message


@pytest.mark.parametrize(
    "base", [{"name": "org/other", "revision": "abc123"}, {"name": "org/base", "revision": "def"}]
)
def test_an_adapter_of_another_base_model_is_refused(tmp_path, base):
    artifact(tmp_path / "a", base=base)
    error = refusal(tmp_path, source(tmp_path / "a"))
    assert error.reason == "BaseModelMismatch"
    assert "this server serves org/base@abc123" in error.message


def test_a_rank_above_the_limit_is_refused(tmp_path):
    artifact(tmp_path / "a", r=32)
    error = refusal(tmp_path, source(tmp_path / "a"), max_rank=16)
    assert error.reason == "RankTooLarge"
    assert "rank 32" in error.message
    assert fetcher(tmp_path, max_rank=None).fetch(source(tmp_path / "a")).rank == 32


def test_a_rank_pattern_above_the_limit_is_refused(tmp_path):
    artifact(tmp_path / "a", r=8, rank_pattern={"q_proj": 64})
    assert refusal(tmp_path, source(tmp_path / "a")).reason == "RankTooLarge"


def test_a_manifest_rank_that_disagrees_with_the_peft_config_is_refused(tmp_path):
    artifact(tmp_path / "a", r=8, config_r=4)
    error = refusal(tmp_path, source(tmp_path / "a"))
    assert error.reason == "ManifestInvalid"
    assert "manifest says rank 8, adapter_config.json says rank 4" in error.message


def test_dora_is_refused(tmp_path):
    artifact(tmp_path / "a", use_dora=True)
    assert refusal(tmp_path, source(tmp_path / "a")).reason == "UnsupportedAdapter"
