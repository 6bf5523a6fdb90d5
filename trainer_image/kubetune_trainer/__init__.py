"""kubetune's trainer: fine-tunes a LoRA or QLoRA adapter for one FineTuneJob.

It runs in the training pod (``kubetune-train --config job.yaml``) or on a workstation, and
parses the job with the operator's own API models (:mod:`kubetune.api`).
"""

__version__ = "0.1.0"
