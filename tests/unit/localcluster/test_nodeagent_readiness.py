"""Readiness follows the kubelet's thresholds (exec probes: no server needed)."""

from __future__ import annotations

from localcluster.nodeagent_processes import Readiness

CONTAINER = {"name": "main"}


def _readiness(command: list[str], **probe: int) -> Readiness:
    spec = {"exec": {"command": command}, "periodSeconds": 0, **probe}
    return Readiness(spec, CONTAINER, env={"PATH": "/usr/bin:/bin"}, cwd="/")


def test_without_a_probe_a_running_container_is_ready() -> None:
    assert Readiness(None, CONTAINER, env={}, cwd="/").check(ready=False)


def test_ready_after_success_threshold_and_unready_after_failure_threshold() -> None:
    passing = _readiness(["true"], successThreshold=2)
    assert not passing.check(ready=False)
    assert passing.check(ready=False)
    failing = _readiness(["false"], failureThreshold=2)
    assert failing.check(ready=True)
    assert not failing.check(ready=True)


def test_no_probe_before_its_initial_delay() -> None:
    delayed = _readiness(["true"], initialDelaySeconds=3600)
    assert not delayed.check(ready=False)
    assert delayed.check(ready=True)  # nothing probed, nothing changes
