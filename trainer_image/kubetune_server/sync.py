"""``python -m kubetune_server.sync``: fetch and verify a serving config's adapters, then exit.

vLLM loads LoRA adapters from local paths and verifies nothing, so the operator runs this as
the init container of every vLLM pod (in this image): each adapter of the config lands in
``<dest>/<manifest digest hex>/``, checked exactly as ``kubetune-serve`` checks it (manifest
digest, every file's sha256 and size, base model and revision, rank, PEFT config), and vLLM
starts only once all of them are there::

    KUBETUNE_SERVING_CONFIG='{"adapters": [...]}' python -m kubetune_server.sync \\
        --dest /adapters --model-name meta-llama/Llama-3.1-8B-Instruct --model-revision main

Exit status 0 when every adapter is in place; 3 when one is refused (retrying cannot help:
the reason, e.g. DigestMismatch or RankTooLarge, is in the termination message); 1 when S3
could not be reached, so the kubelet retries the init container with backoff.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
from pathlib import Path

from kubetune_server.config import ServingConfig, load_config
from kubetune_server.errors import AdapterLoadError, AdapterRefusedError
from kubetune_server.fetching import AdapterFetcher
from kubetune_server.settings import AdapterSettings, ModelSettings, Settings

CONFIG_ENV = "KUBETUNE_SERVING_CONFIG"
EXIT_REFUSED = 3
EXIT_UNAVAILABLE = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kubetune_server.sync", description=__doc__)
    parser.add_argument("--config", type=Path, help=f"serving config file (default: ${CONFIG_ENV})")
    parser.add_argument("--dest", type=Path, required=True, help="where the adapters go")
    parser.add_argument("--model-name", required=True, help="base model the adapters must fit")
    parser.add_argument("--model-revision", default="main")
    parser.add_argument("--max-lora-rank", type=int, help="refuse adapters of a higher rank")
    parser.add_argument("--s3-credentials-dir", type=Path, default=AdapterSettings.credentials_dir)
    parser.add_argument("--termination-path", type=Path, default=Path("/dev/termination-log"))
    return parser


def _config(args: argparse.Namespace) -> ServingConfig:
    if args.config is not None:
        return load_config(args.config)
    return ServingConfig.model_validate(json.loads(os.environ.get(CONFIG_ENV) or "{}"))


def sync(config: ServingConfig, settings: Settings) -> list[Path]:
    """Fetch every adapter of ``config``; their verified directories, in config order."""
    fetcher = AdapterFetcher(settings)
    return [fetcher.fetch(source).directory for source in config.adapters]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings(
        model=ModelSettings(name=args.model_name, revision=args.model_revision),
        adapters=AdapterSettings(
            cache_dir=args.dest,
            credentials_dir=args.s3_credentials_dir,
            max_lora_rank=args.max_lora_rank,
        ),
    )
    try:
        for directory in sync(_config(args), settings):
            print(f"verified {directory}", flush=True)
    except AdapterLoadError as exc:
        print(f"adapter sync failed: {exc}", file=sys.stderr, flush=True)
        summary = {"reason": exc.reason, "message": exc.message}
        with contextlib.suppress(OSError):  # not in a pod: stderr said it
            args.termination_path.write_text(json.dumps(summary))
        return EXIT_REFUSED if isinstance(exc, AdapterRefusedError) else EXIT_UNAVAILABLE
    return 0


if __name__ == "__main__":
    status = main()
    # A one-shot command: everything it built lives until the process ends. Frozen, none of it
    # is traversed by the interpreter's last garbage collection at exit (botocore's models and
    # pydantic's schemas: ~0.1 s of a 1 s pull of a 200 MB adapter, docs/benchmarks/transfer.md).
    gc.freeze()
    sys.exit(status)
