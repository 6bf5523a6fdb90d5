"""``hack/demo``: kubetune's whole lifecycle on this machine, in one command.

``up`` starts a local control plane and S3, a node agent that runs the pods which must really
run as local processes, installs the CRDs and the operator with the Helm chart (the operator
pod itself runs on the agent, as its own ServiceAccount), uploads a tiny model and a dataset,
applies examples/finetunejob.yaml and examples/inferencedeployment.yaml through the overlay
in examples/local, trains for real on CPU, verifies the Adapter, rolls it out as a canary,
promotes it and sends a chat completion through it. Everything keeps running afterwards;
``down`` stops exactly what ``up`` started and removes the state directory.

Each stage is a function in :mod:`localcluster.demo_stages`; events go to
``<dir>/events.jsonl`` (see :mod:`localcluster.demo_timeline`).

    python -m localcluster.demo up [--dir .kubetune/demo]
    python -m localcluster.demo down [--dir .kubetune/demo]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from localcluster import Cluster, S3Server, processes
from localcluster import demo_rollout as rollout
from localcluster import demo_stages as stages
from localcluster.demo_stages import Demo
from localcluster.demo_timeline import Stage, StageError, Timeline
from localcluster.nodeagent_processes import port_free

DEFAULT_DIR = Path(".kubetune/demo")
MARKER = ".kubetune-demo"
"""Written first into a demo's directory: ``down`` removes only directories that have it."""
AGENT_GRACE = 30.0
"""Seconds the agent gets to stop its pods' processes before it is killed."""

STAGES: list[tuple[str, str, Callable[[Demo, Stage], None]]] = [
    ("cluster", "Start the control plane and S3", stages.start_cluster),
    ("agent", "Start the node agent (real pods run as local processes)", stages.start_agent),
    ("operator", "Install the CRDs and the operator with the Helm chart", stages.install_operator),
    ("data", "Upload the tiny base model and the dataset", stages.upload_data),
    ("baseline", f"Import {stages.BASELINE}, the adapter serving today", stages.import_baseline),
    ("apply", "Apply the examples (examples/local overlay)", stages.apply_examples),
    ("training", f"Train {stages.TRAINED} on CPU (4-bit QLoRA)", rollout.train),
    ("adapter", f"Verify the Adapter {stages.TRAINED}", rollout.verify_adapter),
    ("canary", f"Roll {stages.TRAINED} out as a canary", rollout.canary),
    ("promote", "Promote the canary", rollout.promote),
    ("chat", f"Chat with {stages.SERVED}", rollout.chat),
    ("summary", "Show what is running", rollout.summarize),
]


class DemoError(Exception):
    """The demo cannot start (already running, a port taken); one line for the user."""


def running(root: Path) -> list[str]:
    """What of a demo in ``root`` still runs: the agent, control plane components, S3."""
    alive: list[str] = []
    state = root / "demo.json"
    if state.exists():
        agent = json.loads(state.read_text())["agent"]
        if processes.runs(agent["pid"], agent["started"]):
            alive.append("node agent")
    if (root / "cluster" / "state.json").exists():
        info = Cluster(root / "cluster").info
        alive += [c for c in info.pids if processes.runs(info.pids[c], info.starts[c])]
    if (root / "s3" / "s3.json").exists():
        s3 = S3Server(root / "s3").info
        if processes.runs(s3.pid, s3.started):
            alive.append("minio")
    return alive


def preflight(root: Path) -> None:
    """Refuse to start over a running demo or with the serving port taken; clear leftovers
    of one that is no longer running."""
    alive = running(root)
    if alive:
        raise DemoError(
            f"a demo is already running in {root} ({', '.join(alive)}); "
            f"run `hack/demo down --dir {root}` first"
        )
    if root.exists():
        down(root)  # leftovers of a demo that is no longer running; refuses other directories
    if not port_free(stages.SERVING_PORT):
        raise DemoError(
            f"port {stages.SERVING_PORT} is in use: the demo's serving pod listens there "
            "(pods on the node agent share this machine's network)"
        )


def up(root: Path, console: Console) -> int:
    """Run every stage; 0 when all succeeded. A failed stage leaves everything running for a
    look at the logs it lists."""
    preflight(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).touch()
    timeline = Timeline(root / "events.jsonl", console)
    demo = Demo(root, timeline)
    console.rule("[bold]kubetune: the local lifecycle demo")
    try:
        for name, title, run in STAGES:
            with timeline.stage(name, title) as stage:
                run(demo, stage)
    except StageError as exc:
        console.print()
        console.print(timeline.table())
        console.print(f"\n[bold red]hack/demo: {exc}[/bold red]", highlight=False)
        console.print("Logs:")
        for what, path in demo.logs():
            console.print(f"  {what:45} {path}", highlight=False)
        console.print(f"Tear down: hack/demo down --dir {root}", highlight=False)
        timeline.event("demo", "failed", failedStage=exc.stage)
        return 1
    console.print()
    console.print(timeline.table())
    timeline.event("demo", "done", seconds=round(timeline.elapsed(), 3))
    console.print(
        "\n[bold]Everything keeps running.[/bold] In your shell:\n"
        f'  eval "$(hack/cluster env --dir {root})"   # KUBECONFIG and AWS_* for kubectl, aws\n'
        f"  kubectl get kubetune -n {stages.NAMESPACE}\n"
        f"  curl {demo.found.get('url', 'http://127.0.0.1:8000')}/v1/models\n"
        f"Pod logs: {root / 'agent' / 'pods'}\n"
        f"Tear down: hack/demo down --dir {root}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def down(root: Path) -> None:
    """Stop the agent (and with it every pod's processes), S3 and the control plane, then
    remove the state directory. Safe to run twice, or after a failed ``up``; refuses a
    directory that is not a demo's (it would remove it)."""
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return
    if not (root / MARKER).exists():
        raise DemoError(f"{root} is not a demo's directory (no {MARKER}); nothing removed")
    state = root / "demo.json"
    if state.exists():
        agent = json.loads(state.read_text())["agent"]
        processes.stop(agent["pid"], agent["started"], grace=AGENT_GRACE)
    # Children of an agent that had to be killed: it records them for this.
    children = root / "agent" / "children.json"
    if children.exists():
        with contextlib.suppress(json.JSONDecodeError):
            for pid, started in json.loads(children.read_text()).items():
                processes.stop(int(pid), started)
    S3Server(root / "s3").down()
    Cluster(root / "cluster").down()
    shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/demo",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("command", nargs="?", choices=["up", "down"], default="up")
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"where the demo keeps its state (default: ./{DEFAULT_DIR})",
    )
    args = parser.parse_args(argv)
    root: Path = args.dir.resolve()
    console = Console(highlight=False)
    try:
        if args.command == "down":
            down(root)
            console.print(f"demo in {root} stopped and removed")
            return 0
        return up(root, console)
    except DemoError as exc:
        print(f"hack/demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"hack/demo: interrupted; what started keeps running: hack/demo down --dir {root}",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
