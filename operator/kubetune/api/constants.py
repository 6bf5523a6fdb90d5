"""Names the API, the operator and the trainer must agree on.

Kept in one place so that a label or finalizer is spelled once; the CRD generator, the
builders and the controllers all import from here.
"""

from typing import Final

GROUP: Final = "kubetune.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
CATEGORY: Final = "kubetune"

# Labels put on every child object (Jobs, Pods, Deployments, Services, Adapters).
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
MANAGED_BY: Final = "kubetune"
LABEL_FINETUNEJOB: Final = f"{GROUP}/finetunejob"
LABEL_INFERENCEDEPLOYMENT: Final = f"{GROUP}/inferencedeployment"
# An adapter family (`spec.adapter.name` of a FineTuneJob) and one version of it; an
# InferenceDeployment selects "the newest Ready Adapter of a family" through these labels.
LABEL_ADAPTER_FAMILY: Final = f"{GROUP}/adapter-family"
LABEL_ADAPTER_VERSION: Final = f"{GROUP}/adapter-version"
# The rollout track of a serving Deployment: stable or canary.
LABEL_TRACK: Final = f"{GROUP}/track"

# Annotations.
ANNOTATION_MANIFEST_DIGEST: Final = f"{GROUP}/manifest-digest"
# A one-shot command on an InferenceDeployment: promote (the canary becomes stable now) or
# abort (roll back to stable now). Set by a user or the Argo CD actions; the operator acts
# and removes it, so the spec is never touched and GitOps stays in sync.
ANNOTATION_ROLLOUT_ACTION: Final = f"{GROUP}/rollout-action"
# Hash of the manifest the operator last applied to a child, to skip no-op writes.
ANNOTATION_APPLIED_HASH: Final = f"{GROUP}/applied-hash"
# Kopf keeps its handler progress and diff base in annotations under this prefix, so that
# the strict status schema never has to make room for kopf's bookkeeping.
KOPF_STORAGE_PREFIX: Final = f"operator.{GROUP}"

# Finalizers.
# Kopf's finalizer on objects with deletion handlers: an Adapter is held by it while an
# InferenceDeployment serves it, and until its S3 objects are deleted (deletionPolicy Delete).
FINALIZER_CLEANUP: Final = f"{GROUP}/cleanup"
