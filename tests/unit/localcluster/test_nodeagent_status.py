"""Pod status from the node agent's records: phase, conditions, container states, messages."""

from __future__ import annotations

import pytest

from localcluster.nodeagent_status import (
    ContainerRecord,
    PodRun,
    adopt,
    build_container_status,
    build_pod_status,
    plan_phase,
    set_condition,
    should_restart,
    termination_message,
)
from support.nodeagent import make_pod

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


def waiting(name: str = "c", **kw) -> ContainerRecord:
    return ContainerRecord(name, **kw)


def running(name: str = "c", ready: bool = True) -> ContainerRecord:
    return ContainerRecord(name, state="running", started_at=T0, ready=ready, reason="")


def exited(name: str = "c", code: int = 0) -> ContainerRecord:
    reason = "Completed" if code == 0 else "Error"
    return ContainerRecord(name, state="terminated", exit_code=code, reason=reason)


def restarting(name: str = "c") -> ContainerRecord:
    return ContainerRecord(
        name, reason="CrashLoopBackOff", restart_count=1, last_terminated={"exitCode": 1}
    )


@pytest.mark.parametrize(
    ("init", "main", "failure", "phase"),
    [
        ([], [waiting()], None, "Pending"),
        ([running("i")], [waiting()], None, "Pending"),
        ([exited("i"), waiting("j")], [waiting()], None, "Pending"),
        ([exited("i", 1)], [waiting()], None, "Failed"),
        ([restarting("i")], [waiting()], None, "Pending"),
        ([exited("i")], [running()], None, "Running"),
        ([], [running("a"), exited("b")], None, "Running"),
        ([], [restarting()], None, "Running"),
        ([], [exited("a"), exited("b")], None, "Succeeded"),
        ([], [exited("a"), exited("b", 137)], None, "Failed"),
        ([], [running()], ("DeadlineExceeded", "too long"), "Failed"),
    ],
)
def test_phase_follows_the_kubelet(init, main, failure, phase: str) -> None:
    assert plan_phase(PodRun(T0, init=init, main=main, failure=failure)) == phase


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        ("Never", 1, False),
        ("Never", 0, False),
        ("OnFailure", 1, True),
        ("OnFailure", 0, False),
        ("Always", 0, True),
        ("Always", 2, True),
    ],
)
def test_restart_policy(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


def _conditions(status: dict) -> dict[str, dict]:
    return {c["type"]: c for c in status["conditions"]}


def test_running_ready_pod_status() -> None:
    status = build_pod_status(make_pod(), PodRun(T0, main=[running("main")]), now=T1)
    conditions = _conditions(status)
    assert status["phase"] == "Running"
    assert {t: c["status"] for t, c in conditions.items()} == {
        "PodScheduled": "True",
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    assert conditions["PodScheduled"]["lastTransitionTime"] == T0  # the scheduler's, kept
    assert (status["podIP"], status["hostIP"], status["startTime"]) == ("127.0.0.1",) * 2 + (T0,)
    assert status["qosClass"] == "BestEffort"
    assert status["containerStatuses"][0]["state"] == {"running": {"startedAt": T0}}
    assert "initContainerStatuses" not in status


def test_unready_and_uninitialized_conditions_name_the_containers() -> None:
    run = PodRun(T0, init=[running("fetch")], main=[waiting("a"), waiting("b")])
    conditions = _conditions(build_pod_status(make_pod(), run, now=T1))
    assert conditions["Initialized"]["status"] == "False"
    assert conditions["Initialized"]["message"] == "containers with incomplete status: [fetch]"
    assert conditions["Ready"]["reason"] == "ContainersNotReady"
    assert conditions["Ready"]["message"] == "containers with unready status: [a b]"


def test_succeeded_pod_is_not_ready_because_it_completed() -> None:
    status = build_pod_status(make_pod(), PodRun(T0, main=[exited("main")]), now=T1)
    conditions = _conditions(status)
    assert status["phase"] == "Succeeded"
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "PodCompleted"


def test_readiness_gates_hold_ready_back() -> None:
    pod = make_pod(readinessGates=[{"conditionType": "example.com/warm"}])
    conditions = _conditions(build_pod_status(pod, PodRun(T0, main=[running()]), now=T1))
    assert conditions["ContainersReady"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False"
    pod["status"]["conditions"].append({"type": "example.com/warm", "status": "True"})
    conditions = _conditions(build_pod_status(pod, PodRun(T0, main=[running()]), now=T1))
    assert conditions["Ready"]["status"] == "True"


def test_deadline_failure_sets_reason_and_message() -> None:
    run = PodRun(T0, main=[exited("main", 143)], failure=("DeadlineExceeded", "too long"))
    status = build_pod_status(make_pod(), run, now=T1)
    assert (status["phase"], status["reason"], status["message"]) == (
        "Failed",
        "DeadlineExceeded",
        "too long",
    )


def test_rebuilding_an_unchanged_status_changes_nothing() -> None:
    # The agent writes only when the status differs; a rebuild over its own write must match.
    pod = make_pod()
    run = PodRun(T0, init=[exited("i")], main=[running("main", ready=False)])
    pod["status"] = build_pod_status(pod, run, now=T0)
    assert build_pod_status(pod, run, now=T1) == pod["status"]


def test_set_condition_keeps_transition_time_unless_status_flips() -> None:
    conditions: list[dict] = []
    assert set_condition(conditions, "Ready", False, now=T0, reason="Starting")
    assert not set_condition(conditions, "Ready", False, now=T1, reason="Starting")
    assert conditions[0]["lastTransitionTime"] == T0
    assert set_condition(conditions, "Ready", True, now=T1)
    assert conditions == [
        {"type": "Ready", "status": "True", "lastTransitionTime": T1, "lastProbeTime": None}
    ]


def test_terminated_and_restarting_container_statuses() -> None:
    record = ContainerRecord(
        "main",
        image="trainer:1",
        state="terminated",
        exit_code=3,
        reason="Error",
        message="boom",
        started_at=T0,
        finished_at=T1,
        container_id="local://42",
    )
    assert build_container_status(record) == {
        "name": "main",
        "image": "trainer:1",
        "imageID": "",
        "containerID": "local://42",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {
            "terminated": {
                "exitCode": 3,
                "reason": "Error",
                "message": "boom",
                "startedAt": T0,
                "finishedAt": T1,
                "containerID": "local://42",
            }
        },
        "lastState": {},
    }
    status = build_container_status(restarting("main"))
    assert status["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
    assert status["lastState"] == {"terminated": {"exitCode": 1}}
    assert status["restartCount"] == 1


@pytest.mark.parametrize(
    ("written", "log", "policy", "code", "message"),
    [
        (b"done", b"log", None, 0, "done"),
        (b"boom", b"log", "FallbackToLogsOnError", 1, "boom"),
        (b"", b"line 1\nlast words\n", "FallbackToLogsOnError", 2, "line 1\nlast words\n"),
        (b"", b"output", "FallbackToLogsOnError", 0, None),
        (b"", b"output", "File", 1, None),
        (b"x" * 5000, b"", None, 1, "x" * 4096),
    ],
)
def test_termination_message(written, log, policy, code, message) -> None:
    assert termination_message(written, log, policy=policy, exit_code=code) == message


def test_fallback_log_keeps_the_last_80_lines() -> None:
    log = b"".join(b"%d\n" % i for i in range(100))
    message = termination_message(b"", log, policy="FallbackToLogsOnError", exit_code=1)
    assert message is not None
    assert message.splitlines() == [str(i) for i in range(20, 100)]


def test_fallback_log_is_capped_at_2048_bytes() -> None:
    message = termination_message(b"", b"y" * 10_000, policy="FallbackToLogsOnError", exit_code=1)
    assert message == "y" * 2048


def test_adopt_a_running_container_reports_it_lost() -> None:
    record = ContainerRecord("main")
    status = {
        "name": "main",
        "restartCount": 2,
        "containerID": "local://9",
        "state": {"running": {"startedAt": T0}},
        "lastState": {"terminated": {"exitCode": 1}},
    }
    assert adopt(record, status)
    assert (record.restart_count, record.started_at, record.container_id) == (2, T0, "local://9")
    assert record.last_terminated == {"exitCode": 1}


def test_adopt_a_finished_container_keeps_its_result() -> None:
    record = ContainerRecord("fetch")
    done = {"exitCode": 0, "reason": "Completed", "startedAt": T0, "finishedAt": T1}
    assert not adopt(record, {"name": "fetch", "state": {"terminated": done}})
    assert (record.state, record.exit_code, record.finished_at) == ("terminated", 0, T1)
