"""Condition types and reasons: the machine-readable half of "fail with a reason".

Reasons are one enum shared by the three kinds because several (NotFound, AccessDenied,
S3Unavailable) arise in more than one controller; a client can switch on them without caring
which object reported the failure. Condition types are per kind.
"""

from enum import StrEnum


class ConditionStatus(StrEnum):
    """The status of a condition, as in metav1.Condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class FineTuneJobConditionType(StrEnum):
    """Conditions a FineTuneJob reports."""

    VALIDATED = "Validated"  # spec and dataset checked on CPU before any GPU is held
    ADMITTED = "Admitted"  # admitted by the queue (Kueue) or, without one, immediately
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


class AdapterConditionType(StrEnum):
    """Conditions an Adapter reports."""

    VERIFIED = "Verified"  # the manifest and every file digest matched
    READY = "Ready"  # verified and servable


class InferenceDeploymentConditionType(StrEnum):
    """Conditions an InferenceDeployment reports, after the Deployment conventions."""

    AVAILABLE = "Available"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"


class Reason(StrEnum):
    """Why a condition has its status; CamelCase per the Kubernetes API conventions."""

    # Spec and inputs.
    INVALID_SPEC = "InvalidSpec"
    VALIDATING_DATASET = "ValidatingDataset"
    DATASET_VALID = "DatasetValid"
    DATASET_INVALID = "DatasetInvalid"
    BASE_MODEL_NOT_FOUND = "BaseModelNotFound"
    NOT_FOUND = "NotFound"
    ACCESS_DENIED = "AccessDenied"
    S3_ACCESS_DENIED = "S3AccessDenied"
    S3_UNAVAILABLE = "S3Unavailable"
    SECRET_NOT_FOUND = "SecretNotFound"
    # Queueing and scheduling.
    QUEUED = "Queued"
    ADMITTED = "Admitted"
    SUSPENDED = "Suspended"
    PREEMPTED = "Preempted"
    IMAGE_PULL_FAILED = "ImagePullFailed"
    # Training.
    JOB_CREATED = "JobCreated"
    TRAINING = "Training"
    COMPLETED = "Completed"
    ARTIFACT_EXISTS = "ArtifactExists"  # a completed artifact was found; training skipped
    OUT_OF_MEMORY = "OutOfMemory"
    NAN_LOSS = "NaNLoss"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    TRAINER_FAILED = "TrainerFailed"
    # Artifacts.
    VERIFYING = "Verifying"
    VERIFIED = "Verified"
    MANIFEST_INVALID = "ManifestInvalid"
    DIGEST_MISMATCH = "DigestMismatch"
    IN_USE = "InUse"
    # Serving and rollout.
    ADAPTER_NOT_FOUND = "AdapterNotFound"
    ADAPTER_NOT_READY = "AdapterNotReady"
    BASE_MODEL_MISMATCH = "BaseModelMismatch"
    RANK_TOO_LARGE = "RankTooLarge"
    MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
    REPLICAS_UNAVAILABLE = "ReplicasUnavailable"
    CANARY_PROGRESSING = "CanaryProgressing"
    CANARY_RESTARTED = "CanaryRestarted"  # a newer adapter arrived mid-rollout
    CANARY_CANCELLED = "CanaryCancelled"  # the spec went back to the stable adapters
    ANALYSIS_FAILED = "AnalysisFailed"
    EVAL_GATE_FAILED = "EvalGateFailed"
    ABORTED = "Aborted"
    ACTION_IGNORED = "RolloutActionIgnored"  # promote/abort without a canary, or unknown
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    DEPLOYED = "Deployed"  # adapters in service without a canary (first version, no rollout)
    AS_EXPECTED = "AsExpected"
