"""Our adapter push, as one command, for ``adapter_transfer.py`` to time.

Push is what the trainer does at the end of a run: upload the files, hashing each as it is
sent, then the manifest of their sha256 and sizes
(``kubetune_trainer.artifacts.publish_adapter``). Credentials come from the standard AWS
variables. Prints one JSON line with the in-process timings: ``importSeconds`` for our
modules, ``transferSeconds`` for the transfer itself (the rest of the command's wall time
is the interpreter's start-up and exit). The pull side needs no such script: the benchmark
times the product's own pull command, ``python -m kubetune_server.sync``.

    python bench/adapter_push.py DIR s3://bucket/prefix/ ENDPOINT
"""

from __future__ import annotations

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


def main(argv: list[str]) -> None:
    directory, output_uri, endpoint = argv
    print(json.dumps(push(Path(directory), output_uri, endpoint)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
