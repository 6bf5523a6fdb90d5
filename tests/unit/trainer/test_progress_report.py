"""progress.json carries the checkpoint and tokens the operator copies, and a restarted pod
continues from the last report instead of reporting step 0 while it loads."""

from __future__ import annotations

import json
from typing import Any

from kubetune_trainer.progress import ProgressPublisher
from kubetune_trainer.storage import ObjectNotFoundError, S3Uri

TARGET = S3Uri("b", "out/run/progress.json")


class MemoryStore:
    """get_bytes/put_bytes over a dict, with every write kept."""

    def __init__(self, **objects: Any) -> None:
        self.objects = {k: json.dumps(v).encode() for k, v in objects.items()}
        self.writes: list[dict[str, Any]] = []
        self.retried: list[bool] = []

    def get_bytes(self, uri: S3Uri) -> bytes:
        if uri.key not in self.objects:
            raise ObjectNotFoundError(str(uri))
        return self.objects[uri.key]

    def put_bytes(self, data: bytes, uri: S3Uri, *, retry: bool = True) -> None:
        self.objects[uri.key] = data
        self.writes.append(json.loads(data))
        self.retried.append(retry)


def publisher(store: MemoryStore) -> ProgressPublisher:
    return ProgressPublisher(store, TARGET, run_id="run", interval=3600)  # type: ignore[arg-type]


def test_a_fresh_run_reports_step_0_without_a_checkpoint() -> None:
    store = MemoryStore()
    progress = publisher(store)

    progress.start()
    progress.stop()

    first = store.writes[0]
    assert (first["step"], first["trainedTokens"]) == (0, 0)
    assert "checkpointUri" not in first


def test_a_restarted_pod_continues_from_the_last_report() -> None:
    checkpoint = "s3://b/out/run/checkpoints/step-000010/"
    last = {"step": 12, "totalSteps": 40, "trainedTokens": 900, "checkpointUri": checkpoint}
    store = MemoryStore(**{TARGET.key: last})
    progress = publisher(store)

    progress.start()
    first = store.writes[0]
    progress.start_session(10, 800)  # training resumed from the checkpoint at step 10
    progress.update(checkpoint_uri="s3://b/out/run/checkpoints/step-000020/", step=20)
    progress.stop()

    assert (first["step"], first["totalSteps"], first["trainedTokens"]) == (12, 40, 900)
    assert first["checkpointUri"] == checkpoint
    assert "tokensPerSecond" not in first or first["tokensPerSecond"] == 0
    final = store.writes[-1]
    assert final["step"] == 20
    assert final["checkpointUri"].endswith("/step-000020/")


def test_an_unreadable_last_report_is_replaced() -> None:
    store = MemoryStore()
    store.objects[TARGET.key] = b"{not json"
    progress = publisher(store)

    progress.start()
    progress.stop()

    assert store.writes[0]["step"] == 0


def test_only_the_first_report_waits_out_an_s3_outage() -> None:
    store = MemoryStore()
    progress = publisher(store)

    progress.start()
    progress.publish()
    progress.stop()

    assert store.retried == [True, False, False]
