"""What ``kubectl get`` shows for each kind, and which kinds can be scaled.

Kept beside the generator rather than on the models: it is presentation of the CRD, not
part of the object's contract.
"""

from typing import Any

from kubetune.api import Adapter, FineTuneJob, InferenceDeployment, KubeObject

_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _column(
    name: str, kind: str, path: str, description: str, *, priority: int = 0
) -> dict[str, Any]:
    column: dict[str, Any] = {
        "name": name,
        "type": kind,
        "jsonPath": path,
        "description": description,
    }
    if priority:
        column["priority"] = priority
    return column


PRINTER_COLUMNS: dict[type[KubeObject], list[dict[str, Any]]] = {
    FineTuneJob: [
        _column("Phase", "string", ".status.phase", "Where the job is in its life."),
        _column("Progress", "integer", ".status.progress.percent", "Percent of steps done."),
        _column("Loss", "number", ".status.progress.trainLoss", "Latest training loss."),
        _column(
            "Eval Loss", "number", ".status.progress.evalLoss", "Latest eval loss.", priority=1
        ),
        _column("Adapter", "string", ".status.adapterRef", "Adapter created.", priority=1),
        _column("Base", "string", ".spec.baseModel.name", "Base model.", priority=1),
        _AGE,
    ],
    Adapter: [
        _column("Phase", "string", ".status.phase", "Where the adapter is in its life."),
        _column("Base", "string", ".spec.baseModel.name", "Base model it fits."),
        _column("Size", "integer", ".status.sizeBytes", "Size of the files in bytes."),
        _column("Eval Loss", "number", ".spec.metrics.evalLoss", "Final eval loss.", priority=1),
        _AGE,
    ],
    InferenceDeployment: [
        _column("Phase", "string", ".status.phase", "Rollout state."),
        _column("Stable", "string", ".status.stable.revision", "Adapters in service."),
        _column("Canary", "string", ".status.canary.revision", "Adapters being rolled out."),
        _column("Weight", "integer", ".status.canary.weight", "Percent of traffic to canary."),
        _column("Ready", "integer", ".status.readyReplicas", "Ready serving pods.", priority=1),
        _AGE,
    ],
}

SCALE: dict[type[KubeObject], dict[str, str]] = {
    InferenceDeployment: {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    },
}
"""The scale subresource, so ``kubectl scale`` and a HorizontalPodAutoscaler work."""
