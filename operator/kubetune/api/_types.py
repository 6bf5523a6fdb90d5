"""Constrained scalar types shared by the kinds.

Each alias carries its own pattern and length bound, so the pydantic models and the
generated CRD schemas reject the same strings. Patterns are written for the common subset of
Rust's regex (pydantic), Go's RE2 (the apiserver) and Python's re: anchored, no lookaround.
Every string has a maxLength so the apiserver can estimate the cost of CEL rules over it.
"""

from typing import Annotated

from pydantic import AfterValidator, Field

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = rf"{_LABEL}(\.{_LABEL})*"
# S3 bucket naming rules: 3-63 characters of lowercase letters, digits, dots and hyphens,
# beginning and ending with a letter or digit.
_S3_BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
# One segment of a key or path: no "/", control character, space or backslash, and never
# "." or ".." (a key with them is a path traversal once it becomes a file name), so also no
# empty segment ("//").
_CHAR = r"[^/\x00-\x20\x7f\\]"
_SEGMENT = rf"(\.?[^/\x00-\x20\x7f\\.]|\.\.{_CHAR}){_CHAR}*"
_S3 = rf"s3://{_S3_BUCKET}(/{_SEGMENT})*/?"
_PVC = rf"pvc://{_SUBDOMAIN}(/{_SEGMENT})*/?"
_HF_REPO = r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?"

DNS1123_LABEL_PATTERN = rf"^{_LABEL}$"
DNS1123_SUBDOMAIN_PATTERN = rf"^{_SUBDOMAIN}$"
S3_URI_PATTERN = rf"^{_S3}$"
MODEL_URI_PATTERN = rf"^(hf://{_HF_REPO}|{_S3}|{_PVC})$"
DATASET_URI_PATTERN = rf"^({_S3}|pvc://{_SUBDOMAIN}(/{_SEGMENT})+/?)$"
HF_REPO_PATTERN = rf"^{_HF_REPO}$"
HTTP_URL_PATTERN = r"^https?://[^\s/?#]+(/\S*)?$"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
SHA256_DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
SHA256_HEX_PATTERN = r"^[a-f0-9]{64}$"
QUANTITY_PATTERN = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
LABEL_KEY_PATTERN = rf"^({_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
REVISION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"
IMAGE_PATTERN = r"^\S+$"

DnsLabel = Annotated[str, Field(pattern=DNS1123_LABEL_PATTERN, min_length=1, max_length=63)]
"""A DNS-1123 label: the shape of names that end up in Service names and label values."""

ObjectName = Annotated[str, Field(pattern=DNS1123_SUBDOMAIN_PATTERN, min_length=1, max_length=253)]
"""The name of a Kubernetes object in the same namespace (DNS-1123 subdomain)."""

ShortObjectName = Annotated[
    str, Field(pattern=DNS1123_SUBDOMAIN_PATTERN, min_length=1, max_length=63)
]
"""An object name short enough to be a label value too."""

ServedName = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", max_length=63)
]
"""A model name clients request; also a label value on metrics."""

S3Uri = Annotated[str, Field(pattern=S3_URI_PATTERN, max_length=1024)]
"""`s3://bucket[/prefix]` with a valid bucket name."""

ModelUri = Annotated[str, Field(pattern=MODEL_URI_PATTERN, max_length=1024)]
"""Where model weights live: `hf://org/name`, `s3://bucket/prefix` or `pvc://claim/path`."""

DatasetUri = Annotated[str, Field(pattern=DATASET_URI_PATTERN, max_length=1024)]
"""Where a dataset lives: `s3://bucket/key` or `pvc://claim/path/in/volume`."""

HfRepoId = Annotated[str, Field(pattern=HF_REPO_PATTERN, min_length=1, max_length=256)]
"""A Hugging Face Hub repository id such as `meta-llama/Llama-3.1-8B-Instruct`."""

Revision = Annotated[str, Field(pattern=REVISION_PATTERN, min_length=1, max_length=128)]
"""A git revision of a model repository: branch, tag or commit sha."""

HttpUrl = Annotated[str, Field(pattern=HTTP_URL_PATTERN, max_length=512)]
"""An http(s) URL."""

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32)]
"""A Go-style duration such as `90s`, `5m` or `1h30m`."""

Sha256Digest = Annotated[str, Field(pattern=SHA256_DIGEST_PATTERN, max_length=71)]
"""`sha256:` followed by 64 lowercase hex digits."""

Sha256Hex = Annotated[str, Field(pattern=SHA256_HEX_PATTERN, max_length=64)]
"""64 lowercase hex digits."""

Quantity = (
    Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)]
)
"""A resource quantity: an integer (`4`) or a string (`500m`, `16Gi`), as in a Pod spec."""

LabelKey = Annotated[str, Field(pattern=LABEL_KEY_PATTERN, max_length=317)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]
SecretKey = Annotated[str, Field(pattern=SECRET_KEY_PATTERN, min_length=1, max_length=253)]
Image = Annotated[str, Field(pattern=IMAGE_PATTERN, max_length=512)]
"""A container image reference."""


def _significant(value: float) -> float:
    return float(f"{value:.5g}")


Metric = Annotated[float, AfterValidator(_significant)]
"""A reported measurement (a loss) at five significant digits: ``kubectl get`` prints number
columns as stored, and 1.5409238815307618 says no more than 1.5409."""
