"""The operator's S3 access: read progress and manifests, verify artifacts, delete them.

Credentials come from the Secret a spec names (read by the operator, never copied into any
object); errors become reasons (NotFound, AccessDenied, S3Unavailable) instead of
tracebacks, and digests are computed while streaming so a large adapter is never held in
memory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from kubetune.api import Reason
from kubetune.artifacts import MANIFEST_NAME, Manifest, digest, join

_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}
_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
_CHUNK = 1 << 20
_MESSAGE_LIMIT = 2000


class StorageError(Exception):
    """An S3 failure with the reason a status condition reports."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> Location:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3:// URI: {uri!r}")
        return cls(parsed.netloc, parsed.path.lstrip("/"))


def make_client(
    *, endpoint: str | None, region: str | None, credentials: dict[str, str] | None
) -> Any:
    """A boto3 client with bounded retries and timeouts (an outage must not hang a handler)."""
    import boto3
    from botocore.config import Config

    credentials = credentials or {}
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region or "us-east-1",
        aws_access_key_id=credentials.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=credentials.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
        config=Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
            s3={"addressing_style": "path"},
            # Every artifact file is checked against the sha256 of its manifest, end to end;
            # botocore's per-request CRC on top would hash each byte a second time.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def _translate(exc: Exception, what: str) -> StorageError:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _DENIED:
            return StorageError(Reason.ACCESS_DENIED, f"access denied to {what} ({code})")
        if code in _MISSING:
            return StorageError(Reason.NOT_FOUND, f"{what} does not exist")
        return StorageError(Reason.S3_UNAVAILABLE, f"{what}: {code}: {exc}")
    if isinstance(exc, BotoCoreError):
        return StorageError(Reason.S3_UNAVAILABLE, f"{what}: {exc}")
    raise exc


class ArtifactStore:
    """One S3 endpoint with one set of credentials."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def read(self, uri: str) -> bytes:
        loc = Location.parse(uri)
        try:
            return bytes(self.client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read())
        except Exception as exc:
            raise _translate(exc, uri) from exc

    def read_json(self, uri: str) -> dict[str, Any] | None:
        """The JSON object at ``uri``, or None when there is none (yet)."""
        try:
            data = json.loads(self.read(uri))
        except StorageError as exc:
            if exc.reason == Reason.NOT_FOUND:
                return None
            raise
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def exists(self, uri: str) -> bool:
        loc = Location.parse(uri)
        try:
            self.client.head_object(Bucket=loc.bucket, Key=loc.key)
        except Exception as exc:
            error = _translate(exc, uri)
            if error.reason == Reason.NOT_FOUND:
                return False
            raise error from exc
        return True

    def sha256(self, uri: str) -> tuple[str, int]:
        """Hex digest and size of the object at ``uri``, streamed."""
        loc = Location.parse(uri)
        hasher, size = hashlib.sha256(), 0
        try:
            body = self.client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"]
            for chunk in iter(lambda: body.read(_CHUNK), b""):
                hasher.update(chunk)
                size += len(chunk)
        except Exception as exc:
            raise _translate(exc, uri) from exc
        return hasher.hexdigest(), size

    def load_manifest(self, prefix: str, expected_digest: str | None = None) -> Manifest:
        """The manifest under ``prefix``; DigestMismatch when its bytes are not the expected."""
        uri = join(prefix, MANIFEST_NAME)
        data = self.read(uri)
        if expected_digest is not None and digest(data) != expected_digest:
            raise StorageError(
                Reason.DIGEST_MISMATCH,
                f"{uri} has digest {digest(data)}, the Adapter claims {expected_digest}",
            )
        try:
            return Manifest.model_validate_json(data)
        except ValueError as exc:
            # Bounded: a condition message holds at most 32 KiB, and a hostile manifest can
            # have thousands of bad entries.
            details = str(exc)[:_MESSAGE_LIMIT]
            raise StorageError(
                Reason.MANIFEST_INVALID, f"{uri} is not a valid manifest: {details}"
            ) from exc

    def verify(self, prefix: str, expected_digest: str) -> Manifest:
        """Check the manifest's digest and each file's size and sha256; the manifest if all hold."""
        manifest = self.load_manifest(prefix, expected_digest)
        for entry in manifest.files:
            uri = join(prefix, entry.path)
            actual, size = self.sha256(uri)
            if (actual, size) != (entry.sha256, entry.size):
                raise StorageError(
                    Reason.DIGEST_MISMATCH,
                    f"{uri}: sha256 {actual} ({size} bytes), manifest says {entry.sha256} "
                    f"({entry.size} bytes)",
                )
        return manifest

    def delete_artifact(self, prefix: str, manifest: Manifest) -> int:
        """Delete exactly the files a manifest lists, then the manifest; the count deleted."""
        keys = [Location.parse(join(prefix, f.path)).key for f in manifest.files]
        keys.append(Location.parse(join(prefix, MANIFEST_NAME)).key)
        bucket = Location.parse(prefix).bucket
        try:
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        except Exception as exc:
            raise _translate(exc, prefix) from exc
        return len(keys)
