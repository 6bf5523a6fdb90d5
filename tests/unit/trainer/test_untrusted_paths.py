"""Names the trainer reads from S3 or a spec never choose where a file lands outside its
directory: checkpoint markers, object keys under a prefix and pvc:// paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubetune.api import Reason
from kubetune_trainer import sources
from kubetune_trainer.checkpoints import restore_newest
from kubetune_trainer.errors import TrainerError
from kubetune_trainer.layout import RunLayout
from kubetune_trainer.storage import S3Uri

ESCAPES = ["../../evil", "/etc/passwd", "a/../../b", "a\\..\\b", "x\x00y"]
LAYOUT = RunLayout.of("s3://bucket/out/", "run")


class FakeStore:
    """Objects by key; records where downloads were asked to land."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.downloads: list[Path] = []

    def list(self, prefix: S3Uri) -> dict[str, int]:
        base = prefix.key.rstrip("/") + "/"
        return {k[len(base) :]: len(v) for k, v in self.objects.items() if k.startswith(base)}

    def get_bytes(self, uri: S3Uri) -> bytes:
        return self.objects[uri.key]

    def download_file(self, uri: S3Uri, path: Path) -> Path:
        self.downloads.append(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.objects.get(uri.key, b""))
        return path


def _checkpoint(step: int, files: object, *, marker: bytes | None = None) -> dict[str, bytes]:
    prefix = LAYOUT.checkpoint(step).key
    body = marker or json.dumps({"step": step, "datasetSha256": "d", "files": files}).encode()
    return {f"{prefix}/COMPLETE": body, f"{prefix}/adapter_model.safetensors": b"w"}


@pytest.mark.parametrize("name", ESCAPES)
def test_a_marker_naming_a_file_outside_its_checkpoint_is_not_resumed(
    tmp_path: Path, name: str
) -> None:
    store = FakeStore(
        {
            **_checkpoint(10, {"adapter_model.safetensors": 1}),
            **_checkpoint(20, {name: 1}),
            **_checkpoint(30, {}, marker=b"\xff not json"),
            f"{LAYOUT.checkpoints.key}/step-abc/COMPLETE": b"{}",
        }
    )
    restored = restore_newest(store, LAYOUT, tmp_path / "ckpt", "d")  # type: ignore[arg-type]
    assert restored is not None
    assert restored[1]["step"] == 10
    assert all(p.resolve().is_relative_to(tmp_path / "ckpt") for p in store.downloads)


@pytest.mark.parametrize("name", ["../evil.jsonl", "a/../../evil.jsonl"])
def test_an_object_key_that_climbs_out_of_the_dataset_directory_is_refused(
    tmp_path: Path, name: str
) -> None:
    store = FakeStore({f"data/{name}": b"{}"})
    with pytest.raises(TrainerError) as caught:
        sources._sync(
            store,  # type: ignore[arg-type]
            S3Uri("bucket", "data"),
            tmp_path / "dataset",
            {name: 2},
            Reason.DATASET_INVALID,
        )
    assert caught.value.reason == Reason.DATASET_INVALID
    assert repr(name) in caught.value.message
    assert store.downloads == []


@pytest.mark.parametrize("uri", ["pvc://claim/../other", "pvc://claim/a/../../b", "pvc://c/a//b"])
def test_a_pvc_path_that_leaves_its_claim_is_refused(uri: str) -> None:
    with pytest.raises(TrainerError) as caught:
        sources.pvc_path(uri)
    assert caught.value.reason == Reason.INVALID_SPEC


def test_plain_pvc_paths_resolve_under_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sources.PVC_ROOT_ENV, "/mnt/pvc")
    assert sources.pvc_path("pvc://claim/data/train.jsonl") == Path(
        "/mnt/pvc/claim/data/train.jsonl"
    )
    assert sources.pvc_path("pvc://claim/data/") == Path("/mnt/pvc/claim/data")
