"""The node agent runs pods scheduled onto its node as real local processes.

One agent (a subprocess started like ``hack/cluster agent``) serves the module; its node has
a unique name so a demo agent on a shared cluster is never disturbed. Every pod here really
runs ``sys.executable``; the tests read what the processes wrote, the pod status the agent
reported, and /proc to see that processes are gone when they should be.
"""

from __future__ import annotations

import json
import secrets
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from localcluster import Cluster, processes
from support.agent import TAINT_KEY, Agent, node_ready, start_agent
from support.polling import eventually


@pytest.fixture(scope="module")
def agent(
    cluster: Cluster, api_client: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Agent]:
    """One node agent for the module; stopped, and its node deleted, afterwards."""
    root = tmp_path_factory.mktemp("agent")
    running = start_agent(cluster, root, f"local-agent-t{secrets.token_hex(3)}")
    core = client.CoreV1Api(api_client)
    try:
        eventually(lambda: node_ready(core, running.node), what=f"node {running.node} Ready")
        yield running
    finally:
        processes.stop(running.pid, running.started)
        # Without its node, the pod garbage collector removes what is left bound to it.
        core.delete_node(running.node)


def python(name: str, script: str, **fields: Any) -> dict[str, Any]:
    """A container that runs ``script`` with this interpreter (the image is ignored)."""
    return {
        "name": name,
        "image": "kubetune.example/ignored:1",
        "command": [sys.executable, "-c", textwrap.dedent(script)],
        **fields,
    }


def _pod(core: client.CoreV1Api, namespace: str, name: str, spec: dict[str, Any]) -> None:
    core.create_namespaced_pod(namespace, {"metadata": {"name": name}, "spec": spec})


def _phase(core: client.CoreV1Api, namespace: str, name: str, *phases: str) -> client.V1Pod:
    pod = core.read_namespaced_pod(name, namespace)
    return pod if pod.status.phase in phases else None


def _gone(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        return exc.status == 404
    return False


def _pid(pod: client.V1Pod) -> tuple[int, int]:
    """The PID and start time of the pod's first container (its containerID is local://PID)."""
    pid = int(pod.status.container_statuses[0].container_id.removeprefix("local://"))
    started = processes.start_time(pid)
    assert started is not None, f"PID {pid} of {pod.metadata.name} is not running"
    return pid, started


def test_node_is_ready_tainted_leased_and_has_a_gpu(
    agent: Agent, api_client: client.ApiClient
) -> None:
    node = client.CoreV1Api(api_client).read_node(agent.node)
    assert node.metadata.labels["kubetune.io/pool"] == "local"
    assert "type" not in node.metadata.labels  # kwok leaves it alone
    assert (TAINT_KEY, "true", "NoSchedule") in [
        (t.key, t.value, t.effect) for t in node.spec.taints
    ]
    assert node.status.allocatable["nvidia.com/gpu"] == "1"
    lease = client.CoordinationV1Api(api_client).read_namespaced_lease(
        agent.node, "kube-node-lease"
    )
    assert lease.spec.holder_identity == agent.node
    assert lease.metadata.owner_references[0].uid == node.metadata.uid


def test_job_runs_a_real_process_with_secret_config_map_and_empty_dir(
    agent: Agent, api_client: client.ApiClient, namespace: str
) -> None:
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}}
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "job"}, "data": {"greeting": "hello"}}
    )
    scratch = {"name": "scratch", "mountPath": "/scratch"}
    prepare = python("prepare", "open('/scratch/init.txt', 'w').write('from-init')")
    prepare["volumeMounts"] = [scratch]
    train = python(
        "train",
        """
        import os
        parts = [os.environ["TOKEN"], open("/etc/kubetune/greeting").read(),
                 open("/scratch/init.txt").read()]
        open("/scratch/result.txt", "w").write(" ".join(parts))
        print("trained", flush=True)
        """,
        env=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
        volumeMounts=[scratch, {"name": "config", "mountPath": "/etc/kubetune"}],
    )
    spec = agent.spec(
        train,
        initContainers=[prepare],
        restartPolicy="Never",
        volumes=[
            {"name": "scratch", "emptyDir": {}},
            {"name": "config", "configMap": {"name": "job"}},
        ],
    )
    batch.create_namespaced_job(
        namespace,
        {"metadata": {"name": "train"}, "spec": {"backoffLimit": 0, "template": {"spec": spec}}},
    )

    def complete() -> bool:
        conditions = batch.read_namespaced_job("train", namespace).status.conditions or []
        return any(c.type == "Complete" and c.status == "True" for c in conditions)

    eventually(complete, what="Job Complete")
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=train").items[0]
    assert (pod.spec.node_name, pod.status.phase, pod.status.pod_ip) == (
        agent.node,
        "Succeeded",
        "127.0.0.1",
    )
    init = pod.status.init_container_statuses[0].state.terminated
    main = pod.status.container_statuses[0].state.terminated
    assert (init.exit_code, init.reason, main.exit_code, main.reason) == (
        0,
        "Completed",
        0,
        "Completed",
    )
    assert main.started_at >= init.finished_at
    local = agent.pod_dir(pod)
    assert (local / "volumes/scratch/result.txt").read_text() == "s3cr3t hello from-init"
    assert (local / "train/0.log").read_text() == "trained\n"


def test_failure_reports_exit_code_and_termination_message(
    agent: Agent, api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    writes = python(
        "writes",
        """
        import os, sys
        open(os.environ["KUBETUNE_TERMINATION_LOG"], "w").write('{"reason": "DatasetInvalid"}')
        sys.exit(3)
        """,
    )
    logs = python(
        "logs",
        "import sys; print('last words', file=sys.stderr); sys.exit(2)",
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    _pod(core, namespace, "fails", agent.spec(writes, logs, restartPolicy="Never"))
    pod = eventually(lambda: _phase(core, namespace, "fails", "Failed"), what="pod Failed")
    states = {s.name: s.state.terminated for s in pod.status.container_statuses}
    assert (states["writes"].exit_code, states["writes"].reason) == (3, "Error")
    assert states["writes"].message == '{"reason": "DatasetInvalid"}'
    assert (states["logs"].exit_code, states["logs"].message) == (2, "last words\n")


def test_a_pod_talks_to_the_apiserver_as_its_service_account(
    agent: Agent, api_client: client.ApiClient, namespace: str
) -> None:
    """In-cluster config cannot work for a local process; the KUBECONFIG the agent writes
    for the mounted token makes the client authenticate as the pod's ServiceAccount, with a
    token bound to the pod."""
    core = client.CoreV1Api(api_client)
    whoami = python(
        "whoami",
        """
        import json, os
        from kubernetes import client, config
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()  # KUBECONFIG, from the agent
        review = client.AuthenticationV1Api().create_self_subject_review({})
        info = review.status.user_info
        pod = info.extra["authentication.kubernetes.io/pod-name"]
        message = {"user": info.username, "pod": pod}
        open(os.environ["KUBETUNE_TERMINATION_LOG"], "w").write(json.dumps(message))
        """,
    )
    _pod(core, namespace, "whoami", agent.spec(whoami, restartPolicy="Never"))
    pod = eventually(lambda: _phase(core, namespace, "whoami", "Succeeded", "Failed"))
    message = pod.status.container_statuses[0].state.terminated.message
    assert pod.status.phase == "Succeeded", message
    assert json.loads(message) == {
        "user": f"system:serviceaccount:{namespace}:default",
        "pod": ["whoami"],
    }


def test_field_refs_and_mount_paths_seen_by_the_process(
    agent: Agent, api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    fields = {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
        "POD_UID": "metadata.uid",
        "TEAM": "metadata.labels['team']",
        "NOTE": "metadata.annotations['note']",
        "NODE": "spec.nodeName",
        "POD_IP": "status.podIP",
    }
    env = [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in fields.items()]
    report = python(
        "report",
        """
        import json, os
        names = [*json.loads(os.environ["NAMES"]), "KUBETUNE_PATH_MAP"]
        seen = {name: os.environ[name] for name in names}
        open(os.environ["KUBETUNE_TERMINATION_LOG"], "w").write(json.dumps(seen))
        """,
        env=[*env, {"name": "NAMES", "value": json.dumps(list(fields))}],
        volumeMounts=[{"name": "work", "mountPath": "/work"}],
    )
    spec = agent.spec(report, restartPolicy="Never", volumes=[{"name": "work", "emptyDir": {}}])
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {
                "name": "fields",
                "labels": {"team": "nlp"},
                "annotations": {"note": "hi"},
            },
            "spec": spec,
        },
    )
    pod = eventually(lambda: _phase(core, namespace, "fields", "Succeeded"), what="Succeeded")
    seen = json.loads(pod.status.container_statuses[0].state.terminated.message)
    path_map = json.loads(seen.pop("KUBETUNE_PATH_MAP"))
    assert seen == {
        "POD_NAME": "fields",
        "POD_NAMESPACE": namespace,
        "POD_UID": pod.metadata.uid,
        "TEAM": "nlp",
        "NOTE": "hi",
        "NODE": agent.node,
        "POD_IP": "127.0.0.1",
    }
    assert path_map["/work"] == str(agent.pod_dir(pod) / "volumes/work")


def test_container_waits_for_its_secret_then_runs(
    agent: Agent, api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    ref = {"secretKeyRef": {"name": "late", "key": "value"}}
    main = python(
        "main",
        "import os; open(os.environ['KUBETUNE_TERMINATION_LOG'], 'w').write(os.environ['V'])",
        env=[{"name": "V", "valueFrom": ref}],
    )
    _pod(core, namespace, "waits", agent.spec(main, restartPolicy="Never"))

    def config_error() -> bool:
        statuses = core.read_namespaced_pod("waits", namespace).status.container_statuses or []
        return any(
            s.state.waiting and s.state.waiting.reason == "CreateContainerConfigError"
            for s in statuses
        )

    eventually(config_error, what="CreateContainerConfigError")
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "late"}, "stringData": {"value": "arrived"}}
    )
    pod = eventually(lambda: _phase(core, namespace, "waits", "Succeeded"), what="Succeeded")
    assert pod.status.container_statuses[0].state.terminated.message == "arrived"


def test_on_failure_restarts_the_container_and_counts_it(
    agent: Agent, api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    flaky = python(
        "flaky",
        """
        import os, sys
        if not os.path.exists("/state/failed-once"):
            open("/state/failed-once", "w").close()
            sys.exit(1)
        """,
        volumeMounts=[{"name": "state", "mountPath": "/state"}],
    )
    spec = agent.spec(flaky, restartPolicy="OnFailure", volumes=[{"name": "state", "emptyDir": {}}])
    _pod(core, namespace, "flaky", spec)
    pod = eventually(lambda: _phase(core, namespace, "flaky", "Succeeded"), what="Succeeded")
    status = pod.status.container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 1
    assert status.state.terminated.exit_code == 0


def test_deployment_becomes_ready_only_when_its_readiness_probe_answers(
    agent: Agent, api_client: client.ApiClient, namespace: str
) -> None:
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    port = processes.free_port()
    server = {
        "name": "web",
        "image": "kubetune.example/ignored:1",
        "command": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1"],
        "args": ["--directory", "/www", str(port)],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
        "volumeMounts": [{"name": "www", "mountPath": "/www"}],
    }
    labels = {"app": "web"}
    template = {
        "metadata": {"labels": labels},
        "spec": agent.spec(server, volumes=[{"name": "www", "emptyDir": {}}]),
    }
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
        },
    )

    def running() -> client.V1Pod | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        return next((p for p in pods if p.status.phase == "Running"), None)

    pod = eventually(running, what="a Running web pod")
    eventually(lambda: processes.http_ok(f"http://127.0.0.1:{port}/"), what="server answers")
    # The server runs, but /ready is a 404 until the file exists: the pod must not be Ready.
    status = core.read_namespaced_pod(pod.metadata.name, namespace).status
    assert not status.container_statuses[0].ready
    (agent.pod_dir(pod) / "volumes/www/ready").write_text("ok")
    eventually(
        lambda: apps.read_namespaced_deployment("web", namespace).status.ready_replicas == 1,
        what="1 ready replica",
    )


def test_a_port_taken_on_this_machine_moves_with_the_probe(
    agent: Agent, api_client: client.ApiClient, namespace: str
) -> None:
    """Pods on the agent share the host's network: a declared port something already holds
    is moved to a free one, in the arguments and for the readiness probe."""
    core = client.CoreV1Api(api_client)
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        server = {
            "name": "web",
            "image": "kubetune.example/ignored:1",
            "command": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1"],
            "args": [str(taken)],
            "ports": [{"name": "http", "containerPort": taken}],
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        }
        _pod(core, namespace, "moved", agent.spec(server))
        pod = eventually(
            lambda: (
                (p := core.read_namespaced_pod("moved", namespace)).status.container_statuses
                and p.status.container_statuses[0].ready
                and p
            ),
            what="the moved server Ready",
        )
        pid, _ = _pid(pod)
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        moved = int(argv[-2])
        assert moved != taken
        assert processes.http_ok(f"http://127.0.0.1:{moved}/")


@pytest.mark.parametrize(
    ("script", "grace"),
    [
        ("print('armed', flush=True); import time; time.sleep(600)", 30),
        (
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('armed', flush=True); time.sleep(600)",
            1,
        ),
    ],
    ids=["stops-on-sigterm", "ignores-sigterm-until-sigkill"],
)
def test_deleting_a_running_pod_stops_its_process(
    agent: Agent, api_client: client.ApiClient, namespace: str, script: str, grace: int
) -> None:
    core = client.CoreV1Api(api_client)
    spec = agent.spec(python("main", script), terminationGracePeriodSeconds=grace)
    _pod(core, namespace, "doomed", spec)
    pod = eventually(lambda: _phase(core, namespace, "doomed", "Running"), what="Running")
    pid, started = _pid(pod)
    log = agent.pod_dir(pod) / "main/0.log"
    eventually(lambda: log.read_text() == "armed\n", what="signal handler installed")
    core.delete_namespaced_pod("doomed", namespace)
    eventually(lambda: _gone(core, namespace, "doomed"), what="pod removed")
    assert not processes.runs(pid, started)
    assert not (agent.pod_dir(pod) / "volumes").exists()


def test_active_deadline_kills_and_fails_the_pod(
    agent: Agent, api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    script = "import os, time; print(os.getpid(), flush=True); time.sleep(600)"
    spec = agent.spec(python("main", script), restartPolicy="Never", activeDeadlineSeconds=2)
    _pod(core, namespace, "slow", spec)
    log = agent.pod_dir(core.read_namespaced_pod("slow", namespace)) / "main/0.log"
    pid = int(eventually(log.read_text, what="the process's PID in its log"))
    started = processes.start_time(pid)
    failed = eventually(lambda: _phase(core, namespace, "slow", "Failed"), what="Failed")
    assert failed.status.reason == "DeadlineExceeded"
    assert failed.status.container_statuses[0].state.terminated.exit_code == 143
    assert started is not None
    assert not processes.runs(pid, started)


def test_pods_on_kwok_nodes_are_not_touched(
    agent: Agent, api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api_client)
    marker = tmp_path / "ran"
    container = python("main", f"open({str(marker)!r}, 'w').close()")
    spec = {"nodeSelector": {"kubetune.io/pool": "cpu"}, "containers": [container]}
    _pod(core, namespace, "simulated", spec)
    pod = eventually(lambda: _phase(core, namespace, "simulated", "Running"), what="Running")
    assert pod.spec.node_name.startswith("kwok-")
    assert pod.status.pod_ip != "127.0.0.1"
    assert not agent.pod_dir(pod).exists()
    assert not marker.exists()


def test_agent_shutdown_kills_its_containers(
    cluster: Cluster, api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api_client)
    second = start_agent(cluster, tmp_path, f"local-agent-t{secrets.token_hex(3)}")
    try:
        eventually(lambda: node_ready(core, second.node), what=f"node {second.node} Ready")
        spec = second.spec(python("main", "import time; time.sleep(600)"), nodeName=second.node)
        _pod(core, namespace, "orphan", spec)
        pod = eventually(lambda: _phase(core, namespace, "orphan", "Running"), what="Running")
        pid, started = _pid(pod)
        processes.stop(second.pid, second.started)
        assert not processes.runs(pid, started)
    finally:
        processes.stop(second.pid, second.started)
        core.delete_node(second.node)
