"""The local lifecycle demo, end to end, through the entry point hack/demo runs.

``python -m localcluster.demo up`` in a temporary directory: every stage is checked from the
demo's event log and, where it matters, against the cluster it leaves running (the release,
the operator pod on the agent's node, the FineTuneJob, the promoted InferenceDeployment, a
chat completion sent here). A second ``up`` on the same directory is refused in one line.
Then ``down`` must leave no process and no directory behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import localcluster
from localcluster import Cluster, processes

pytestmark = pytest.mark.e2e

HACK = Path(localcluster.__file__).resolve().parents[1]
STAGES = [
    "cluster", "agent", "operator", "data", "baseline", "apply",
    "training", "adapter", "canary", "promote", "chat", "summary",
]  # fmt: skip


def _demo(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    pythonpath = os.pathsep.join(filter(None, [str(HACK), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "localcluster.demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1"},
    )


def _started(root: Path) -> list[tuple[int, int]]:
    """Every process the demo started that is alive now: the agent, its pods' processes,
    the control plane and MinIO."""
    found: list[tuple[int, int]] = []
    if (root / "demo.json").exists():
        agent = json.loads((root / "demo.json").read_text())["agent"]
        found.append((agent["pid"], agent["started"]))
    if (root / "agent" / "children.json").exists():
        children = json.loads((root / "agent" / "children.json").read_text())
        found += [(int(pid), started) for pid, started in children.items()]
    if (root / "cluster" / "state.json").exists():
        info = Cluster(root / "cluster").info
        found += [(info.pids[c], info.starts[c]) for c in info.pids]
    if (root / "s3" / "s3.json").exists():
        s3 = json.loads((root / "s3" / "s3.json").read_text())
        found.append((s3["pid"], s3["started"]))
    return [p for p in found if processes.runs(*p)]


def _info(events: list[dict[str, Any]], stage: str, key: str) -> dict[str, Any]:
    """The stage's info event that carries ``key``."""
    found = [e for e in events if e["stage"] == stage and e["event"] == "info" and key in e]
    assert found, f"no {key} in the events of stage {stage}"
    return found[-1]


def _get(cluster: Cluster, *args: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)  # type: ignore[no-any-return]


def test_the_demo_runs_every_stage_and_down_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    up = _demo("up", "--dir", str(root), timeout=600)
    running: list[tuple[int, int]] = []
    try:
        running = _started(root)
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
        events = [json.loads(line) for line in (root / "events.jsonl").read_text().splitlines()]
        done = [e["stage"] for e in events if e["event"] == "done"]
        assert done == [*STAGES, "demo"]
        assert not [e for e in events if e["event"] == "failed"]
        _check_stages(events)
        _check_cluster(Cluster(root / "cluster"), events)
        assert "Timeline" in up.stdout
        assert "kubectl get kubetune" in up.stdout
        assert f"hack/demo down --dir {root}" in up.stdout

        again = _demo("up", "--dir", str(root), timeout=60)
        assert again.returncode == 2
        assert again.stderr.strip().count("\n") == 0
        assert "a demo is already running" in again.stderr
        assert _started(root) == running  # the refused start touched nothing
    finally:
        running = running or _started(root)
        down = _demo("down", "--dir", str(root), timeout=120)
    assert down.returncode == 0, down.stderr
    assert not root.exists()
    assert running, "the demo left nothing running to check"
    assert [p for p in running if processes.runs(*p)] == []


def _check_stages(events: list[dict[str, Any]]) -> None:
    operator = _info(events, "operator", "node")
    assert _info(events, "operator", "status")["status"] == "deployed"
    assert (operator["node"], operator["ready"]) == ("local-agent-0", True)
    assert _info(events, "data", "records")["records"] > 0

    steps = [e for e in events if e["stage"] == "training" and e["event"] == "progress"]
    assert steps, "no training progress was shown"
    assert all(e["step"] > 0 and e["trainLoss"] > 0 for e in steps)
    trained = _info(events, "training", "steps")
    assert trained["phase"] == "Succeeded"
    assert trained["steps"] == steps[-1]["totalSteps"]
    assert trained["trainedTokens"] > 0

    adapter = _info(events, "adapter", "verifiedDigest")
    assert (adapter["adapter"], adapter["phase"]) == ("support-bot-v3", "Ready")
    assert adapter["verifiedDigest"] == adapter["digest"]

    canary = _info(events, "canary", "weight")
    assert (canary["stable"], canary["canary"], canary["weight"]) == (
        "support-bot-v2",
        "support-bot-v3",
        50,
    )
    assert set(_info(events, "canary", "answeredBy")["answeredBy"]) == {
        "support-bot-v2",
        "support-bot-v3",
    }
    promoted = _info(events, "promote", "stable")
    assert (promoted["stable"], promoted["phase"]) == ("support-bot-v3", "Healthy")
    reply = _info(events, "chat", "reply")
    assert reply["version"] == "support-bot-v3"
    assert reply["reply"].strip()

    table = _info(events, "summary", "table")["table"]
    for shown in ("support-bot-v3", "Succeeded", "Healthy"):
        assert shown in table
    artifact = _info(events, "summary", "files")
    assert artifact["uri"] == adapter["uri"]
    sizes = {f["key"]: f["size"] for f in artifact["files"]}
    assert sizes["manifest.json"] > 0
    assert sizes["adapter_model.safetensors"] > 0


def _check_cluster(cluster: Cluster, events: list[dict[str, Any]]) -> None:
    """What the demo claims, checked against the cluster it left running."""
    pods = _get(cluster, "pods", "-n", "kubetune-system")["items"]
    assert [p["spec"]["nodeName"] for p in pods] == ["local-agent-0"]
    assert {c["type"]: c["status"] for c in pods[0]["status"]["conditions"]}["Ready"] == "True"
    ftj = _get(cluster, "ftj", "support-bot-v3", "-n", "ml-team")["status"]
    assert ftj["phase"] == "Succeeded"
    infd = _get(cluster, "infd", "support", "-n", "ml-team")["status"]
    assert (infd["phase"], infd["stable"]["revision"]) == ("Healthy", "support-bot-v3")
    url = _info(events, "chat", "url")["url"]
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "support-bot", "messages": [{"role": "user", "content": "Hi"}]},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["x-kubetune-adapter-version"] == "support-bot-v3"
