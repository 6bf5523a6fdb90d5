"""Why a training or validation Job failed, read from the Job and its pods.

The trainer leaves a JSON summary (with a reason from the API) in its termination message;
the kubelet and the Job controller leave their own traces (OOMKilled, image pull errors,
deadlines, disruption). This module turns both into one reason and one message a person
can act on, so nobody has to read pod logs to learn what went wrong.
"""

from __future__ import annotations

import json
from typing import Any

from kubetune.api import Reason

_IMAGE_PULL = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_KNOWN = {r.value: r for r in Reason}


def termination_summary(pod: dict[str, Any], container: str) -> dict[str, Any] | None:
    """The trainer's JSON summary from ``container``'s termination message, if it left one."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != container:
            continue
        terminated = (status.get("state") or {}).get("terminated") or {}
        try:
            summary = json.loads(terminated.get("message") or "")
        except ValueError:
            return None
        return summary if isinstance(summary, dict) else None
    return None


def _terminated(pod: dict[str, Any]) -> list[dict[str, Any]]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return [s["state"]["terminated"] for s in statuses if (s.get("state") or {}).get("terminated")]


def image_pull_failure(pods: list[dict[str, Any]]) -> str | None:
    """A message when a pod cannot pull its image (the Job itself never fails for that)."""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in _IMAGE_PULL:
                detail = waiting.get("message", "")
                return f"{status.get('image')}: {waiting.get('reason')}: {detail}".strip()
    return None


def was_preempted(pod: dict[str, Any]) -> bool:
    """True for a pod the cluster took away (preemption, eviction, drain), not a crash."""
    status = pod.get("status") or {}
    if status.get("reason") in {"Evicted", "Preempting"}:
        return True
    return any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def classify_failure(
    job: dict[str, Any], pods: list[dict[str, Any]], container: str
) -> tuple[Reason, str]:
    """The reason and message of a failed Job.

    A deadline wins (the trainer only sees SIGTERM); then the trainer's own reason; then what
    the kubelet saw (a crash's exit code and log tail); then the Job controller's reason.
    """
    newest_first = sorted(
        pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "", reverse=True
    )
    failed = next(
        (
            c
            for c in (job.get("status") or {}).get("conditions") or []
            if c.get("type") == "Failed" and c.get("status") == "True"
        ),
        None,
    )
    if failed is not None and failed.get("reason") == "DeadlineExceeded":
        return Reason.DEADLINE_EXCEEDED, failed.get("message") or "activeDeadlineSeconds exceeded"
    for pod in newest_first:
        summary = termination_summary(pod, container)
        if summary and summary.get("reason") in _KNOWN:
            return _KNOWN[summary["reason"]], str(summary.get("message") or "")
    for pod in newest_first:
        for terminated in _terminated(pod):
            if terminated.get("reason") == "OOMKilled":
                return Reason.OUT_OF_MEMORY, (
                    f"pod {pod['metadata']['name']} ran out of memory (exit code "
                    f"{terminated.get('exitCode')}); raise resources.memory or lower "
                    "training.batchSize / maxSeqLength"
                )
    pull = image_pull_failure(newest_first)
    if pull:
        return Reason.IMAGE_PULL_FAILED, pull
    if any(was_preempted(p) for p in newest_first):
        return Reason.PREEMPTED, "the training pod was preempted or evicted"
    for pod in newest_first:
        for terminated in _terminated(pod):
            if terminated.get("exitCode"):
                detail = terminated.get("message") or terminated.get("reason", "")
                code = terminated["exitCode"]
                return Reason.TRAINER_FAILED, f"exit code {code}: {detail}".strip()
    if failed is not None and failed.get("reason") == "BackoffLimitExceeded":
        return Reason.BACKOFF_LIMIT_EXCEEDED, failed.get("message") or "backoffLimit exceeded"
    return Reason.TRAINER_FAILED, "the Job failed"
