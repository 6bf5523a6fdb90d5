"""What every controller needs: the settings, parsing with a clear error, S3 stores."""

from __future__ import annotations

from typing import Any, TypeVar

import kopf
from pydantic import BaseModel, ValidationError

from kubetune import k8s
from kubetune.api import S3Access
from kubetune.settings import Settings
from kubetune.storage.s3 import ArtifactStore, make_client

M = TypeVar("M", bound=BaseModel)

SETTINGS = Settings.from_env()


def parse(model: type[M], body: Any) -> M:
    """The object as a model; an object that does not parse is a permanent error (the
    apiserver's schema makes that rare: it means the operator and the CRD disagree)."""
    try:
        return model.model_validate(dict(body))
    except ValidationError as exc:
        raise kopf.PermanentError(f"{model.__name__} does not parse: {exc}") from exc


def store_for(access: S3Access, namespace: str) -> ArtifactStore:
    """An S3 store with the endpoint, region and credentials ``access`` names."""
    secret = access.credentials_secret_ref
    credentials = k8s.read_secret(namespace, secret.name) if secret else None
    return ArtifactStore(
        make_client(
            endpoint=access.endpoint or SETTINGS.storage.endpoint,
            region=access.region or SETTINGS.storage.region,
            credentials=credentials,
        )
    )


def transient(exc: Exception) -> kopf.TemporaryError:
    return kopf.TemporaryError(str(exc), delay=10)
