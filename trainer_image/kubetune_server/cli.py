"""``kubetune-serve``: the serve entrypoint of the runtime image.

    kubetune-serve --model-name meta-llama/Llama-3.2-1B-Instruct --model-revision <sha> \\
        --model-uri s3://models/llama-3.2-1b/ --config /etc/kubetune/serving.yaml \\
        --adapter-cache-dir /var/cache/kubetune/adapters --max-lora-rank 64 --port 8000

S3 credentials for the base model come from ``KUBETUNE_S3_BASE_MODEL_AWS_ACCESS_KEY_ID`` etc.
(as for the trainer) or the ambient chain; adapters' from the Secret each config entry names,
mounted under ``--s3-credentials-dir``.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from kubetune_server.settings import AdapterSettings, ModelSettings, ServingSettings, Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubetune-serve",
        description="OpenAI-compatible server for a base model and LoRA adapters.",
    )
    model = parser.add_argument_group("base model")
    model.add_argument("--model-name", required=True, help="identity (org/name) adapters match")
    model.add_argument("--model-revision", default="main", help="identity revision")
    model.add_argument(
        "--model-uri", help="hf://, s3://, pvc:// or a local directory (default: hf://<name>)"
    )
    model.add_argument("--served-model-name", help="name clients use (default: --model-name)")
    model.add_argument(
        "--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"]
    )
    model.add_argument("--model-s3-endpoint", help="S3 endpoint for an s3:// --model-uri")
    model.add_argument("--model-s3-region", help="S3 region for an s3:// --model-uri")
    model.add_argument(
        "--model-cache-dir",
        type=Path,
        default=ModelSettings.download_dir,
        help="where an s3:// model is downloaded",
    )
    adapters = parser.add_argument_group("adapters")
    adapters.add_argument("--config", type=Path, help="serving config file (mounted ConfigMap)")
    adapters.add_argument(
        "--adapter-cache-dir",
        type=Path,
        default=Path(os.environ.get("KUBETUNE_ADAPTER_CACHE", "/var/cache/kubetune/adapters")),
    )
    adapters.add_argument(
        "--s3-credentials-dir", type=Path, default=AdapterSettings.credentials_dir
    )
    adapters.add_argument("--max-lora-rank", type=int, help="refuse adapters of a higher rank")
    adapters.add_argument(
        "--config-poll-seconds", type=float, default=AdapterSettings.poll_interval
    )
    serving = parser.add_argument_group("serving")
    serving.add_argument("--host", default=ServingSettings.host)
    serving.add_argument("--port", type=int, default=ServingSettings.port)
    serving.add_argument("--max-active", type=int, default=ServingSettings.max_active)
    serving.add_argument("--threads", type=int, help="torch CPU threads")
    serving.add_argument(
        "--admin-token-file", type=Path, help="file holding the bearer token of /v1/admin"
    )
    serving.add_argument("--log-level", default="info")
    return parser


def settings_from_args(argv: Sequence[str] | None = None) -> tuple[Settings, str]:
    """Settings and log level from the command line."""
    args = _parser().parse_args(argv)
    token = args.admin_token_file.read_text().strip() if args.admin_token_file else None
    settings = Settings(
        model=ModelSettings(
            name=args.model_name,
            revision=args.model_revision,
            uri=args.model_uri,
            served_name=args.served_model_name,
            dtype=args.dtype,
            endpoint=args.model_s3_endpoint,
            region=args.model_s3_region,
            download_dir=args.model_cache_dir,
        ),
        adapters=AdapterSettings(
            cache_dir=args.adapter_cache_dir,
            config_path=args.config,
            credentials_dir=args.s3_credentials_dir,
            max_lora_rank=args.max_lora_rank,
            poll_interval=args.config_poll_seconds,
        ),
        serving=ServingSettings(
            host=args.host,
            port=args.port,
            max_active=args.max_active,
            admin_token=token or None,
            threads=args.threads,
        ),
    )
    return settings, args.log_level


def main(argv: Sequence[str] | None = None) -> None:
    """Run the server until it is stopped."""
    import uvicorn

    from kubetune_server.app import create_app

    settings, log_level = settings_from_args(argv)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.serving.host,
        port=settings.serving.port,
        log_level=log_level,
        timeout_graceful_shutdown=30,
    )
