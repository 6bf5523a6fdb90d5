"""A real S3 server (MinIO, built from its Go module) on 127.0.0.1.

MinIO is the S3 implementation most on-premises GPU clusters actually run, so multipart
uploads, ETags, ranged reads and error codes in our tests are the ones users will meet.
``stop`` and ``start`` take the server away and bring it back on the same port with the
same data and credentials: an S3 outage, as its clients see one.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from localcluster import processes
from localcluster.tools import ensure_tools

START_TIMEOUT = 60.0


@dataclass
class S3Info:
    """Endpoint and credentials of a running S3 server."""

    root: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    pid: int
    started: int
    console_port: int = 0

    def ready(self) -> bool:
        """True when the server answers its readiness probe."""
        return processes.http_ok(f"{self.endpoint}/minio/health/ready")

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (path-style addressing, as MinIO expects)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, **config),
        )

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point SDKs and the aws CLI at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }


class S3Server:
    """A MinIO server storing its data under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    @property
    def info(self) -> S3Info:
        return S3Info(**json.loads((self.root / "s3.json").read_text()))

    def up(self) -> S3Info:
        if (self.root / "s3.json").exists():
            raise RuntimeError(f"an S3 server already has state in {self.root}; run down first")
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        info = S3Info(
            root=str(self.root),
            endpoint=f"http://127.0.0.1:{processes.free_port()}",
            access_key="kubetune-" + secrets.token_hex(4),
            secret_key=secrets.token_urlsafe(24),
            region="us-east-1",
            pid=0,
            started=0,
            console_port=processes.free_port(),
        )
        try:
            self._launch(info)
        except BaseException:
            self.down()
            raise
        return info

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL), keeping its data, port and credentials."""
        info = self.info
        processes.stop(info.pid, info.started)

    def start(self) -> S3Info:
        """Start a stopped server again, on the same port with the same data; wait for it."""
        info = self.info
        if processes.runs(info.pid, info.started):
            raise RuntimeError(f"the S3 server in {self.root} is already running")
        self._launch(info)
        return info

    def _launch(self, info: S3Info) -> None:
        """Start MinIO as ``info`` describes it and record its process in ``s3.json``."""
        binary = str(ensure_tools(["minio"])["minio"])
        info.pid, info.started = processes.start(
            [
                binary,
                "server",
                self.root / "data",
                f"--address={info.endpoint.removeprefix('http://')}",
                f"--console-address=127.0.0.1:{info.console_port}",
                "--quiet",
            ],
            log=self.root / "minio.log",
            what="minio",
            ready=info.ready,
            timeout=START_TIMEOUT,
            env={
                "MINIO_ROOT_USER": info.access_key,
                "MINIO_ROOT_PASSWORD": info.secret_key,
                "MINIO_BROWSER": "off",
                "MINIO_UPDATE": "off",
                "MINIO_REGION": info.region,
            },
        )
        state = self.root / "s3.json"
        state.write_text(json.dumps(asdict(info), indent=2))
        state.chmod(0o600)

    def ready(self) -> bool:
        """True when the server answers its readiness probe."""
        return self.info.ready()

    def down(self) -> None:
        if (self.root / "s3.json").exists():
            info = self.info
            processes.stop(info.pid, info.started)
        shutil.rmtree(self.root, ignore_errors=True)
