"""S3 access for the trainer: one client per S3 location, retried transfers, clear failures.

A FineTuneJob names up to three S3 locations (base model, dataset, output), each with its
own endpoint, region and credentials Secret. The pod gets each Secret's keys as environment
variables prefixed with the role, e.g. ``KUBETUNE_S3_OUTPUT_AWS_ACCESS_KEY_ID``; without
them the standard AWS credential chain (environment, IRSA, instance profile) applies.
Transfers are multipart with bounded parts and retried (botocore's standard retry mode for
requests, s3transfer's for streams). Access problems become ``S3AccessDenied`` and
unreachable endpoints ``S3Unavailable``, so a pod never dies with a bare traceback.

An S3 server that goes away (a restart, a network partition) must cost a run nothing: the
trainer's stores retry every operation that fails for want of S3 until S3 answers again, for
up to ``KUBETUNE_S3_RETRY_SECONDS`` (default 300) per operation; only then does the run fail
with ``S3Unavailable``. Denied access and missing objects are never retried.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

from kubetune.api import Reason
from kubetune_trainer.errors import TrainerError
from kubetune_trainer.hashing import FileDigest, HashingReader, HashingWriter

if TYPE_CHECKING:
    from kubetune.api import S3Access

MIB = 1 << 20
RETRY_ENV = "KUBETUNE_S3_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 300.0
"""How long one operation keeps retrying an unavailable S3: longer than a server restart."""
_MAX_DELAY = 5.0
T = TypeVar("T")
log = logging.getLogger(__name__)
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "InvalidToken",
    "ExpiredToken",
    "403",
}
_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}


class Role(StrEnum):
    """Which spec field an S3 location comes from; names its credential variables."""

    BASE_MODEL = "BASE_MODEL"
    DATASET = "DATASET"
    OUTPUT = "OUTPUT"


class ObjectNotFoundError(LookupError):
    """The object or bucket does not exist; callers turn it into their own reason."""


@dataclass(frozen=True)
class S3Uri:
    """``s3://bucket/key``; a key ending in ``/`` (or empty) is a prefix."""

    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        """Split an ``s3://`` URI; raises ValueError for anything else."""
        if not uri.startswith("s3://"):
            raise ValueError(f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {uri!r}")
        return cls(bucket, key)

    def join(self, *parts: str) -> S3Uri:
        """A key below this one, as a path join (this one is taken as a prefix)."""
        base = self.key.rstrip("/")
        tail = "/".join(p.strip("/") for p in parts if p)
        return S3Uri(self.bucket, f"{base}/{tail}" if base else tail)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass
class Downloaded:
    """What :meth:`ObjectStore.download_files` brought: the objects that do not exist, and
    the digests of the files it could hash on the way (the others need hashing on disk)."""

    missing: list[S3Uri] = field(default_factory=list)
    digests: dict[Path, FileDigest] = field(default_factory=dict)


def _vouched(sent: HashingReader | FileDigest, path: Path) -> FileDigest:
    """The digest of the bytes sent; a file not read once, in order, is a bug to report."""
    found = sent if isinstance(sent, FileDigest) else sent.digest()
    if found is None:
        raise RuntimeError(f"{path} was not read once, in order, while uploading")
    return found


def _credentials(role: Role) -> dict[str, str]:
    names = {
        "aws_access_key_id": "AWS_ACCESS_KEY_ID",
        "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
        "aws_session_token": "AWS_SESSION_TOKEN",
    }
    found = {arg: os.environ.get(f"KUBETUNE_S3_{role}_{name}") for arg, name in names.items()}
    return {arg: value for arg, value in found.items() if value}


def make_client(access: S3Access | None, role: Role, *, sign_bodies: bool = True) -> Any:
    """A boto3 S3 client for one location, with retries and path-style addressing.

    ``sign_bodies=False`` leaves request bodies out of the SigV4 signature (``UNSIGNED-PAYLOAD``,
    botocore's default over https), sparing a sha256 pass over every byte on each side; only
    for bodies that a signed manifest pins by sha256 and that every reader verifies."""
    import boto3
    from botocore.config import Config

    s3: dict[str, Any] = {"addressing_style": "path"}
    if not sign_bodies:
        s3["payload_signing_enabled"] = False
    # botocore rides out a blip; ObjectStore's deadline (see the module) rides out an outage.
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        s3=s3,
        # Every artifact file is checked against the sha256 of its manifest, end to end;
        # botocore's per-request CRC on top would hash each byte a second time.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client(
        "s3",
        endpoint_url=access.endpoint if access else None,
        region_name=(access.region if access else None) or os.environ.get("AWS_REGION"),
        config=config,
        **_credentials(role),
    )


@contextmanager
def s3_errors(action: str, uri: S3Uri | str) -> Iterator[None]:
    """Translate botocore failures into reasons; a missing object raises ObjectNotFoundError."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _DENIED:
            raise TrainerError(
                Reason.S3_ACCESS_DENIED,
                f"access denied to {action} {uri}: {error.get('Message') or code}",
            ) from exc
        if code in _MISSING:
            raise ObjectNotFoundError(f"{uri} does not exist") from exc
        raise TrainerError(Reason.S3_UNAVAILABLE, f"cannot {action} {uri}: {exc}") from exc
    except S3UploadFailedError as exc:
        denied = any(code in str(exc) for code in _DENIED)
        reason = Reason.S3_ACCESS_DENIED if denied else Reason.S3_UNAVAILABLE
        raise TrainerError(reason, f"cannot {action} {uri}: {exc}") from exc
    except (EndpointConnectionError, BotoCoreError) as exc:
        raise TrainerError(Reason.S3_UNAVAILABLE, f"cannot {action} {uri}: {exc}") from exc


def _retryable(error: TrainerError) -> bool:
    """S3 is unreachable or failing (5xx, throttled), not refusing this request (4xx)."""
    from botocore.exceptions import ClientError

    if error.reason != Reason.S3_UNAVAILABLE:
        return False
    cause = error.__cause__
    if isinstance(cause, ClientError):
        status = int(cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)
        return status >= 500 or status == 429
    return True


def retry_seconds_from_env() -> float:
    """The trainer's per-operation S3 retry deadline, from ``KUBETUNE_S3_RETRY_SECONDS``."""
    value = os.environ.get(RETRY_ENV)
    if not value:
        return DEFAULT_RETRY_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ValueError(f"{RETRY_ENV} must be a number of seconds >= 0, not {value!r}")
    return seconds


class ObjectStore:
    """The few S3 operations the trainer needs, each translated by :func:`s3_errors` and
    retried while S3 is unavailable, for up to ``retry_seconds``.

    ``hashed_client`` (default ``client``) sends the files of :meth:`upload_files`, whose
    sha256 the caller publishes in a manifest: it may be one that does not sign bodies (see
    :func:`make_client`)."""

    def __init__(
        self,
        client: Any,
        *,
        hashed_client: Any = None,
        part_size: int = 8 * MIB,
        concurrency: int = 10,
        retry_seconds: float = 0.0,
    ):
        from boto3.s3.transfer import TransferConfig

        self.client = client
        self.hashed_client = hashed_client or client
        self.retry_seconds = retry_seconds
        self.transfer = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=concurrency,
            num_download_attempts=8,
            # Downloads keep s3transfer's 256 KiB chunks and 100-chunk queue (25 MiB): 1 MiB
            # chunks and a 256 MiB queue halved the hand-offs to the writing thread but
            # doubled the page faults of a 200 MB pull, as much system time again.
        )

    def _retried(
        self, action: str, uri: S3Uri, operation: Callable[[], T], *, retry: bool = True
    ) -> T:
        """``operation``, translated; retried with backoff while S3 is unavailable, until
        ``retry_seconds`` have passed since its first failure (unless ``retry`` is off)."""
        retry_seconds = self.retry_seconds if retry else 0.0
        deadline, delay = None, 1.0
        while True:
            try:
                with s3_errors(action, uri):
                    return operation()
            except TrainerError as exc:
                if not _retryable(exc):
                    raise
                now = time.monotonic()
                deadline = now + retry_seconds if deadline is None else deadline
                if now >= deadline:
                    if not retry_seconds:
                        raise
                    raise TrainerError(
                        exc.reason,
                        f"S3 still unavailable after {retry_seconds:.0f}s of retries "
                        f"({RETRY_ENV} sets how long the trainer waits): {exc.message}",
                    ) from exc
                log.warning("%s; retrying in %.0fs", exc.message, delay)
                time.sleep(min(delay, deadline - now))
                delay = min(delay * 2, _MAX_DELAY)

    def upload_file(self, path: Path, uri: S3Uri) -> None:
        """Upload one file, in parts when it is large."""
        self._retried(
            "upload to",
            uri,
            lambda: self.client.upload_file(str(path), uri.bucket, uri.key, Config=self.transfer),
        )

    def _upload_hashed(self, path: Path, uri: S3Uri) -> FileDigest:
        """Upload one file, failing as :meth:`upload_file` does; returns the digest of the
        bytes sent."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import ClientError

        def attempt() -> FileDigest:
            with path.open("rb") as handle:
                body, sent = self._body(handle)
                try:
                    self.hashed_client.upload_fileobj(
                        body, uri.bucket, uri.key, Config=self.transfer
                    )
                except ClientError as exc:  # boto3's upload_file wraps it so; so do we
                    raise S3UploadFailedError(f"Failed to upload {path} to {uri}: {exc}") from exc
            return _vouched(sent, path)

        return self._retried("upload to", uri, attempt)

    def upload_files(self, pairs: Sequence[tuple[Path, S3Uri]]) -> list[FileDigest]:
        """Upload several files at once, all their parts sharing one pool of ``concurrency``
        connections (as ``aws s3 cp --recursive`` does), and hash each file's bytes as they are
        sent; returns their digests, in order. A file that fails is retried alone."""
        from boto3.s3.transfer import create_transfer_manager

        uploads = []
        with (
            ExitStack() as files,
            create_transfer_manager(self.hashed_client, self.transfer) as manager,
        ):
            for path, uri in pairs:
                body, sent = self._body(files.enter_context(path.open("rb")))
                uploads.append((manager.upload(body, uri.bucket, uri.key), sent, path, uri))
        digests = []
        for future, sent, path, uri in uploads:
            try:
                future.result()
                digests.append(_vouched(sent, path))
            except Exception:  # the single-file path translates the error and retries
                digests.append(self._upload_hashed(path, uri))
        return digests

    def _body(self, handle: BinaryIO) -> tuple[BinaryIO, HashingReader | FileDigest]:
        """What to send of an open file, and what will know the digest of what was sent: a
        small file is read and hashed at once (botocore may read a single-request body more
        than once); a large one is hashed part by part as s3transfer reads it, in order."""
        if os.fstat(handle.fileno()).st_size < self.transfer.multipart_threshold:
            data = handle.read()
            return io.BytesIO(data), FileDigest(hashlib.sha256(data).hexdigest(), len(data))
        reader = HashingReader(handle)
        return cast(BinaryIO, reader), reader

    def download_files(self, pairs: Sequence[tuple[S3Uri, Path]]) -> Downloaded:
        """Download several objects at once (see :meth:`upload_files`), hashing each file's
        contiguous prefix as it is written; reports the objects that do not exist and the
        digests of the files whose every byte was hashed on the way."""
        from boto3.s3.transfer import create_transfer_manager

        for _, path in pairs:
            path.parent.mkdir(parents=True, exist_ok=True)
        downloads = []
        with ExitStack() as files:
            with create_transfer_manager(self.client, self.transfer) as manager:
                for uri, path in pairs:
                    writer = HashingWriter(files.enter_context(path.open("w+b", buffering=0)))
                    future = manager.download(uri.bucket, uri.key, writer)
                    downloads.append((future, writer, uri, path))
            found = [writer.digest() for _, writer, _, _ in downloads]  # before the files close
        result = Downloaded()
        for (future, _, uri, path), digest in zip(downloads, found, strict=True):
            try:
                future.result()
            except Exception:  # the single-file path translates the error and retries
                path.unlink(missing_ok=True)
                try:
                    self.download_file(uri, path)
                except ObjectNotFoundError:
                    result.missing.append(uri)
                continue
            if digest is not None:
                result.digests[path] = digest
        return result

    def put_bytes(
        self,
        data: bytes,
        uri: S3Uri,
        content_type: str = "application/json",
        *,
        retry: bool = True,
    ) -> None:
        """Write a small object in one request; ``retry=False`` for a write that a later one
        replaces anyway (progress), which must not hold its caller through an outage."""
        self._retried(
            "write",
            uri,
            lambda: self.client.put_object(
                Bucket=uri.bucket, Key=uri.key, Body=data, ContentType=content_type
            ),
            retry=retry,
        )

    def get_bytes(self, uri: S3Uri) -> bytes:
        """Read a small object; raises ObjectNotFoundError."""
        return self._retried(
            "read",
            uri,
            lambda: self.client.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read(),
        )

    def size(self, uri: S3Uri) -> int | None:
        """The object's size in bytes, or None when it does not exist."""
        try:
            head = self._retried(
                "stat", uri, lambda: self.client.head_object(Bucket=uri.bucket, Key=uri.key)
            )
        except ObjectNotFoundError:
            return None
        return int(head["ContentLength"])

    def download_file(self, uri: S3Uri, path: Path) -> Path:
        """Download one object to ``path``; raises ObjectNotFoundError."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._retried(
            "download",
            uri,
            lambda: self.client.download_file(uri.bucket, uri.key, str(path), Config=self.transfer),
        )
        return path

    def list(self, prefix: S3Uri) -> dict[str, int]:
        """Keys under ``prefix`` (relative to it) with their sizes."""
        base = prefix.key.rstrip("/") + "/" if prefix.key else ""

        def listing() -> dict[str, int]:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=prefix.bucket, Prefix=base
            )
            return {
                item["Key"][len(base) :]: int(item["Size"])
                for page in pages
                for item in page.get("Contents", [])
            }

        return self._retried("list", prefix, listing)

    def upload_directory(
        self, directory: Path, prefix: S3Uri, *, skip: set[str] = frozenset()
    ) -> list[str]:
        """Upload every file under ``directory`` (except names in ``skip``); relative names."""
        names = sorted(
            p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()
        )
        for name in names:
            if name not in skip:
                self.upload_file(directory / name, prefix.join(name))
        return [n for n in names if n not in skip]

    def delete_prefix(self, prefix: S3Uri) -> None:
        """Delete every object under ``prefix``."""
        keys = [prefix.join(name).key for name in self.list(prefix)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self._retried(
                "delete",
                prefix,
                lambda batch=batch: self.client.delete_objects(
                    Bucket=prefix.bucket, Delete={"Objects": batch}
                ),
            )


def make_store(access: S3Access | None, role: Role) -> ObjectStore:
    """The trainer's store for one location, riding out outages (see the module); adapter
    files go up unsigned, pinned by the manifest, which goes up signed."""
    return ObjectStore(
        make_client(access, role),
        hashed_client=make_client(access, role, sign_bodies=False),
        retry_seconds=retry_seconds_from_env(),
    )
