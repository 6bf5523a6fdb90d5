"""Kopf handlers, thin: parse, observe, decide (pure modules), apply, record.

Importing this package registers every handler with kopf.
"""

from kubetune.controllers import adapter, finetunejob, inferencedeployment, startup

__all__ = ["adapter", "finetunejob", "inferencedeployment", "startup"]
