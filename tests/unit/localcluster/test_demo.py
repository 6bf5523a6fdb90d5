"""The demo's pure parts: the chart values it installs with, and how a failed stage reads."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from localcluster import demo, demo_stages
from localcluster.demo_stages import Demo
from localcluster.demo_timeline import Stage
from support.helm import render

pytestmark = pytest.mark.unit


def test_the_operator_runs_once_on_the_agent_node_on_free_ports(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(demo_stages.helm_values("http://127.0.0.1:9000", "r1")))
    deployment = next(o for o in render("-f", str(values)) if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert deployment["spec"]["replicas"] == 1
    assert pod["nodeSelector"] == {"kubetune.io/pool": "local"}
    assert pod["tolerations"] == [
        {"key": "kubetune.io/local-agent", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert container["command"] == ["kubetune", "operator"]  # the agent ignores images
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {ports["metrics"], ports["health"]}.isdisjoint({8000, 8080, 8081})
    assert env["KUBETUNE_S3_ENDPOINT"] == "http://127.0.0.1:9000"
    assert json.loads(env["KUBETUNE_VALIDATION_NODE_SELECTOR"]) == {"kubetune.io/pool": "local"}
    assert env["KUBETUNE_NAMESPACES"] == "ml-team"


def test_a_failed_stage_says_which_and_where_the_logs_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []

    def first(_demo: Demo, stage: Stage) -> None:
        stage.note("fine", found=1)
        ran.append("first")

    def second(_demo: Demo, _stage: Stage) -> None:
        raise RuntimeError("the apiserver went away")

    def never(_demo: Demo, _stage: Stage) -> None:
        ran.append("never")

    stages = [("one", "One", first), ("two", "Two", second), ("three", "Three", never)]
    monkeypatch.setattr(demo, "STAGES", stages)
    monkeypatch.setattr(demo_stages, "SERVING_PORT", 0)  # any free port passes the preflight
    out = io.StringIO()
    root = tmp_path / "demo"

    assert demo.up(root, Console(file=out, width=200)) == 1

    text = out.getvalue()
    assert ran == ["first"]
    assert "hack/demo: stage two failed: the apiserver went away" in text
    assert str(root / "agent" / "agent.log") in text
    assert str(root / "events.jsonl") in text
    assert f"hack/demo down --dir {root}" in text
    events = [json.loads(line) for line in (root / "events.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["event"]) for e in events] == [
        ("one", "start"),
        ("one", "info"),
        ("one", "done"),
        ("two", "start"),
        ("two", "failed"),
        ("demo", "failed"),
    ]
    assert events[4]["error"] == "the apiserver went away"


def test_down_and_up_refuse_a_directory_that_is_not_a_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("keep me")

    assert demo.main(["down", "--dir", str(mine)]) == 2
    assert demo.main(["up", "--dir", str(mine)]) == 2

    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2
    assert all(f"{mine} is not a demo's directory" in line for line in errors)
    assert (mine / "todo.txt").read_text() == "keep me"


def test_down_of_a_missing_directory_does_nothing(tmp_path: Path) -> None:
    assert demo.main(["down", "--dir", str(tmp_path / "never-started")]) == 0
    assert not (tmp_path / "never-started").exists()
