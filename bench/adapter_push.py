"""Our adapter push or pull, as one command, for ``adapter_transfer.py`` to time.

Push is what the trainer does at the end of a run: upload the files, hashing each as it is
sent, then the manifest of their sha256 and sizes
(``kubetune_trainer.artifacts.publish_adapter``). Pull is what a serving pod does: read and
check the manifest, download exactly the files it lists, verifying each file's sha256 and
size as it is written, and move the verified directory into the cache
(``kubetune_server.fetching.AdapterFetcher``). Credentials come from the standard AWS
variables. Prints one JSON line with the in-process timings: ``importSeconds`` for our
modules, ``transferSeconds`` for the transfer itself (the rest of the command's wall time
is the interpreter's start-up and exit).

    python bench/bench_transfer.py push DIR s3://bucket/prefix/ ENDPOINT
    python bench/bench_transfer.py pull s3://bucket/prefix/run/adapter/ ENDPOINT CACHE_DIR
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

BASE_MODEL = "bench/base"
RUN_ID = "run"
SHA = "0" * 64


def push(directory: Path, output_uri: str, endpoint: str) -> dict[str, float]:
    started = time.perf_counter()
    from kubetune.api import FineTuneJobSpec
    from kubetune_trainer.artifacts import publish_adapter
    from kubetune_trainer.layout import RunLayout
    from kubetune_trainer.storage import Role, make_store

    imported = time.perf_counter()
    spec = FineTuneJobSpec.model_validate(
        {
            "baseModel": {"name": BASE_MODEL},
            "dataset": {"uri": "s3://bench/train.jsonl"},
            "output": {"uri": output_uri, "endpoint": endpoint},
            "adapter": {"name": "bench", "version": "v1"},
        }
    )
    transfer = time.perf_counter()
    store = make_store(spec.output, Role.OUTPUT)
    layout = RunLayout.of(output_uri, RUN_ID)
    publish_adapter(store, layout, directory, spec, run_id=RUN_ID, metrics={}, dataset_sha256=SHA)
    return {
        "importSeconds": imported - started,
        "transferSeconds": time.perf_counter() - transfer,
    }


def pull(uri: str, endpoint: str, cache: Path) -> dict[str, float]:
    started = time.perf_counter()
    from kubetune_server.config import AdapterSource, S3Location
    from kubetune_server.fetching import AdapterFetcher
    from kubetune_server.settings import AdapterSettings, ModelSettings, Settings

    imported = time.perf_counter()
    fetcher = AdapterFetcher(
        Settings(model=ModelSettings(name=BASE_MODEL), adapters=AdapterSettings(cache_dir=cache))
    )
    source = AdapterSource(version="bench-v1", uri=uri, s3=S3Location(endpoint=endpoint))
    transfer = time.perf_counter()
    verified = fetcher.fetch(source)
    return {
        "importSeconds": imported - started,
        "transferSeconds": time.perf_counter() - transfer,
        "bytes": verified.size_bytes,
    }


def main(argv: list[str]) -> None:
    command, *rest = argv
    if command == "push":
        result = push(Path(rest[0]), rest[1], rest[2])
    else:
        result = pull(rest[0], rest[1], Path(rest[2]))
    print(json.dumps(result), flush=True)
    if command == "pull":
        gc.freeze()  # and ends as ``python -m kubetune_server.sync`` (the pull command) does


if __name__ == "__main__":
    main(sys.argv[1:])
