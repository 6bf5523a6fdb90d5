"""Pod status as the kubelet reports it, built from what the node agent knows of each run.

Pure: the agent keeps one :class:`ContainerRecord` per container and asks this module for the
pod's phase, conditions and container statuses. Controllers (Job, Deployment, the kubetune
operator) read exactly these fields, so they follow the kubelet's rules: init containers gate
``Initialized``; ``Ready`` follows container readiness (and readiness gates); the phase is
Pending until init containers succeed, Running while anything runs or will restart, and
Succeeded or Failed once nothing will run again.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LOCAL_IP = "127.0.0.1"
ADDRESSES = {
    "hostIP": LOCAL_IP,
    "hostIPs": [{"ip": LOCAL_IP}],
    "podIP": LOCAL_IP,
    "podIPs": [{"ip": LOCAL_IP}],
}
"""Every pod on the agent's node has the node's address: processes share its network."""
MAX_MESSAGE_BYTES = 4096
"""The kubelet reads at most this much of the termination message file."""
FALLBACK_LOG_BYTES, FALLBACK_LOG_LINES = 2048, 80
"""How much of the log tail FallbackToLogsOnError uses (the kubelet's limits)."""
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
LOST_REASON, LOST_EXIT_CODE = "ContainerStatusUnknown", 137
LOST_MESSAGE = "The container could not be located when the node agent restarted"


@dataclass
class ContainerRecord:
    """What the agent knows of one container: its current state and its last termination."""

    name: str
    image: str = ""
    state: str = "waiting"
    """``waiting``, ``running`` or ``terminated``."""
    reason: str = "ContainerCreating"
    """The waiting or terminated reason."""
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    container_id: str | None = None
    ready: bool = False
    restart_count: int = 0
    last_terminated: dict[str, Any] | None = None

    def terminated(self) -> dict[str, Any]:
        """This run's termination as it appears in ``state.terminated``."""
        out: dict[str, Any] = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        }
        if self.message:
            out["message"] = self.message
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class PodRun:
    """A pod as the agent runs it; ``failure`` (reason, message) forces phase Failed."""

    start_time: str
    init: list[ContainerRecord] = field(default_factory=list)
    main: list[ContainerRecord] = field(default_factory=list)
    failure: tuple[str, str] | None = None


def adopt(record: ContainerRecord, status: Mapping[str, Any]) -> bool:
    """Take over a container from the status a previous agent wrote; True when it was running.

    Its process died with that agent, so, as a kubelet after a reboot, the agent reports it as
    terminated (ContainerStatusUnknown, 137) and the restart policy decides what follows.
    """
    record.restart_count = int(status.get("restartCount", 0))
    record.last_terminated = (status.get("lastState") or {}).get("terminated")
    state = status.get("state") or {}
    if "terminated" in state:
        done = state["terminated"]
        record.state, record.exit_code = "terminated", int(done.get("exitCode", 0))
        record.reason, record.message = done.get("reason", ""), done.get("message")
        record.started_at, record.finished_at = done.get("startedAt"), done.get("finishedAt")
        record.container_id = done.get("containerID")
        return False
    if "running" in state:
        record.started_at = state["running"].get("startedAt")
        record.container_id = status.get("containerID")
        return True
    return False


def should_restart(restart_policy: str, exit_code: int) -> bool:
    """Whether the kubelet starts a container again after it exited with ``exit_code``."""
    return restart_policy == "Always" or (restart_policy == "OnFailure" and exit_code != 0)


def exit_reason(exit_code: int) -> str:
    """The terminated reason for an exit code (Completed or Error, as the runtime reports)."""
    return "Completed" if exit_code == 0 else "Error"


def termination_message(
    written: bytes, log_tail: bytes, *, policy: str | None, exit_code: int
) -> str | None:
    """The message the kubelet reports: what the container wrote to its termination file, or
    with FallbackToLogsOnError after a failure and an empty file, the end of its log."""
    text = written[:MAX_MESSAGE_BYTES]
    if not text.strip() and policy == "FallbackToLogsOnError" and exit_code != 0:
        lines = log_tail[-FALLBACK_LOG_BYTES:].splitlines(keepends=True)
        text = b"".join(lines[-FALLBACK_LOG_LINES:])
    return text.decode("utf-8", "replace") or None


def plan_phase(run: PodRun) -> str:
    """The pod phase for the containers' states (the kubelet's getPhase)."""
    if run.failure is not None:
        return "Failed"
    for record in run.init:
        if record.state != "terminated":
            return "Pending"
        if record.exit_code != 0:
            return "Failed"
    states = {record.state for record in run.main}
    if states == {"terminated"}:
        return "Succeeded" if all(r.exit_code == 0 for r in run.main) else "Failed"
    if "running" in states or "terminated" in states:
        return "Running"
    # All waiting: Running only when some container already ran and waits to restart.
    return "Running" if any(r.last_terminated for r in run.main) else "Pending"


def build_container_status(record: ContainerRecord) -> dict[str, Any]:
    """One entry of ``containerStatuses`` / ``initContainerStatuses``."""
    if record.state == "running":
        state: dict[str, Any] = {"running": {"startedAt": record.started_at}}
    elif record.state == "terminated":
        state = {"terminated": record.terminated()}
    else:
        waiting = {"reason": record.reason}
        if record.message:
            waiting["message"] = record.message
        state = {"waiting": waiting}
    status: dict[str, Any] = {
        "name": record.name,
        "image": record.image,
        "imageID": "",
        "ready": record.ready,
        "restartCount": record.restart_count,
        "started": record.state == "running",
        "state": state,
        "lastState": {"terminated": record.last_terminated} if record.last_terminated else {},
    }
    if record.container_id and record.state != "waiting":
        status["containerID"] = record.container_id
    return status


def set_condition(
    conditions: list[dict[str, Any]],
    kind: str,
    status: bool,
    *,
    now: str,
    reason: str | None = None,
    message: str | None = None,
) -> bool:
    """Set condition ``kind`` in place; keep its lastTransitionTime unless the status flips.

    Returns whether anything changed.
    """
    wanted: dict[str, Any] = {"type": kind, "status": "True" if status else "False"}
    if reason:
        wanted["reason"] = reason
    if message:
        wanted["message"] = message
    for index, current in enumerate(conditions):
        if current.get("type") != kind:
            continue
        flipped = current.get("status") != wanted["status"]
        wanted["lastTransitionTime"] = now if flipped else current.get("lastTransitionTime", now)
        wanted["lastProbeTime"] = None
        changed = current != wanted
        conditions[index] = wanted
        return changed
    conditions.append({**wanted, "lastTransitionTime": now, "lastProbeTime": None})
    return True


def _names(records: Sequence[ContainerRecord]) -> str:
    return "[" + " ".join(r.name for r in records) + "]"


def build_pod_status(pod: Mapping[str, Any], run: PodRun, *, now: str) -> dict[str, Any]:
    """The pod's new ``status``: the old one (which keeps the scheduler's condition and the
    apiserver's qosClass) with everything the kubelet owns recomputed from ``run``."""
    status = copy.deepcopy(pod.get("status") or {})
    phase = plan_phase(run)
    conditions: list[dict[str, Any]] = status.get("conditions") or []
    set_condition(conditions, "PodReadyToStartContainers", True, now=now)
    incomplete = [r for r in run.init if r.state != "terminated" or r.exit_code != 0]
    set_condition(
        conditions,
        "Initialized",
        not incomplete,
        now=now,
        reason="ContainersNotInitialized" if incomplete else None,
        message=f"containers with incomplete status: {_names(incomplete)}" if incomplete else None,
    )
    unready = [r for r in run.main if not r.ready]
    gates = [g["conditionType"] for g in pod.get("spec", {}).get("readinessGates") or []]
    gates_met = all(
        any(c.get("type") == gate and c.get("status") == "True" for c in conditions)
        for gate in gates
    )
    if phase == "Succeeded":
        reason, message = "PodCompleted", None
    elif unready:
        reason, message = "ContainersNotReady", f"containers with unready status: {_names(unready)}"
    else:
        reason, message = None, None
    ready = not unready and phase == "Running"
    set_condition(conditions, "ContainersReady", ready, now=now, reason=reason, message=message)
    if ready and not gates_met:
        reason, message = "ReadinessGatesNotReady", "corresponding condition of pod readiness gate"
    set_condition(conditions, "Ready", ready and gates_met, now=now, reason=reason, message=message)
    status.update(
        copy.deepcopy(ADDRESSES),
        phase=phase,
        conditions=conditions,
        startTime=run.start_time,
        containerStatuses=[build_container_status(r) for r in run.main],
    )
    if run.init:
        status["initContainerStatuses"] = [build_container_status(r) for r in run.init]
    if run.failure is not None:
        status["reason"], status["message"] = run.failure
    return status
