"""CRD generation: the API models, rendered as apiextensions.k8s.io/v1 CRDs.

Depends only on :mod:`kubetune.api`. Run ``python -m kubetune.crd generate`` after changing
a model, and ``python -m kubetune.crd generate --check`` in CI.
"""

from kubetune.crd.converting import SchemaError, structural_schema
from kubetune.crd.rendering import build_crd, crd_name, diff_all, render_all, write_all

__all__ = [
    "SchemaError",
    "build_crd",
    "crd_name",
    "diff_all",
    "render_all",
    "structural_schema",
    "write_all",
]
