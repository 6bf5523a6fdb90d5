"""Load the base model and its tokenizer for serving.

The weights are found exactly as the trainer finds them (``hf://``, ``s3://``, ``pvc://``
through :func:`kubetune_trainer.sources.fetch_base_model`, or a local directory), and the
tokenizer is prepared by the trainer's own :func:`~kubetune_trainer.modeling.load_tokenizer`,
so an adapter is served with the same chat template and special tokens it was trained with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubetune_server.settings import Settings

_DTYPES = ("auto", "float32", "bfloat16", "float16")


def load_base_model(settings: Settings) -> tuple[Any, Any]:
    """``(model, tokenizer)``, the model in eval mode with its KV cache on."""
    import torch
    from transformers import AutoModelForCausalLM

    from kubetune.api import ModelSource
    from kubetune_trainer.modeling import load_tokenizer
    from kubetune_trainer.sources import ModelRef, fetch_base_model

    model = settings.model
    if model.dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, not {model.dtype!r}")
    if settings.serving.threads:
        torch.set_num_threads(settings.serving.threads)
    if model.uri and Path(model.uri).is_dir():
        ref = ModelRef(model.uri)
    else:
        source = ModelSource.model_validate(
            {
                "name": model.name,
                "revision": model.revision,
                "uri": model.uri,
                "endpoint": model.endpoint,
                "region": model.region,
            }
        )
        ref = fetch_base_model(source, model.download_dir)
    tokenizer = load_tokenizer(ref)
    dtype = model.dtype if model.dtype == "auto" else getattr(torch, model.dtype)
    loaded = AutoModelForCausalLM.from_pretrained(
        ref.location, revision=ref.revision, token=ref.token, dtype=dtype
    )
    loaded.config.use_cache = True
    return loaded.eval(), tokenizer
