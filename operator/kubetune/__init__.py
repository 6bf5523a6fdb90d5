"""kubetune: a Kubernetes control plane for LoRA/QLoRA fine-tuning.

The public surface is the API models in :mod:`kubetune.api`; everything else serves the
operator process and its tooling.
"""

__version__ = "0.1.0"
