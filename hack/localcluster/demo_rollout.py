"""The stages of the demo from training to a chat completion: the lifecycle the operator
drives once the examples are applied, watched through the objects' status and the serving
pod's answers. Setup stages and shared names are in :mod:`localcluster.demo_stages`."""

from __future__ import annotations

from typing import Any

import httpx
from kubernetes import client

from kubetune.api.constants import ANNOTATION_ROLLOUT_ACTION
from localcluster.demo_stages import (
    BASELINE,
    FINETUNEJOB,
    INFERENCEDEPLOYMENT,
    NAMESPACE,
    QUESTION,
    SERVED,
    SERVING_PORT,
    TRAINED,
    Demo,
    phase_in,
    wait_for,
)
from localcluster.demo_timeline import Stage


def train(demo: Demo, stage: Stage) -> None:
    """Wait for the FineTuneJob to succeed, showing its phases and training progress."""
    seen: dict[str, Any] = {}

    def done() -> dict[str, Any] | None:
        status = demo.status("finetunejobs", FINETUNEJOB)
        phase = status.get("phase")
        if phase and phase != seen.get("phase"):
            seen["phase"] = phase
            stage.note(f"phase {phase}", phase=phase)
        progress = status.get("progress") or {}
        if progress.get("step") and progress["step"] != seen.get("step"):
            seen["step"] = progress["step"]
            stage.progress(_progress_text(progress), **progress)
        if phase == "Failed":
            failed = next((c for c in status.get("conditions", []) if c["type"] == "Failed"), {})
            raise RuntimeError(f"{failed.get('reason')}: {failed.get('message')}")
        return status if phase == "Succeeded" else None

    status = wait_for(done, what=f"FineTuneJob {FINETUNEJOB} Succeeded", timeout=600)
    progress = status.get("progress") or {}
    stage.note(
        f"Succeeded: {_progress_text(progress)}, {status.get('trainedTokens')} tokens trained",
        phase="Succeeded",
        steps=progress.get("step"),
        trainLoss=progress.get("trainLoss"),
        evalLoss=progress.get("evalLoss"),
        trainedTokens=status.get("trainedTokens"),
    )


def _progress_text(progress: dict[str, Any]) -> str:
    parts = [f"step {progress.get('step')}/{progress.get('totalSteps')}"]
    for key, label in (("trainLoss", "loss"), ("evalLoss", "eval loss")):
        if progress.get(key) is not None:
            parts.append(f"{label} {progress[key]:.3f}")
    if progress.get("tokensPerSecond"):
        parts.append(f"{progress['tokensPerSecond']:.0f} tokens/s")
    return " · ".join(parts)


def verify_adapter(demo: Demo, stage: Stage) -> None:
    status = wait_for(
        lambda: phase_in(demo.status("adapters", TRAINED), "Ready", "Failed"),
        what=f"Adapter {TRAINED} verified",
        timeout=120,
    )
    adapter = demo.get("adapters", TRAINED) or {}
    spec = adapter.get("spec", {})
    if status.get("phase") != "Ready" or status.get("verifiedDigest") != spec.get("digest"):
        raise RuntimeError(f"Adapter {TRAINED} did not verify: {status}")
    demo.found["artifact"] = spec["uri"]
    stage.note(
        f"Adapter {TRAINED} Ready: digest {spec['digest'][:19]}… verified, "
        f"{status.get('files')} files, {status.get('sizeBytes')} bytes",
        adapter=TRAINED,
        phase="Ready",
        digest=spec["digest"],
        verifiedDigest=status.get("verifiedDigest"),
        uri=spec["uri"],
    )


def canary(demo: Demo, stage: Stage) -> None:
    """The new Adapter of the family becomes the canary; requests reach both versions."""

    def at_canary() -> dict[str, Any] | None:
        status = demo.status("inferencedeployments", INFERENCEDEPLOYMENT)
        canary = status.get("canary") or {}
        stable = (status.get("stable") or {}).get("revision")
        ok = canary.get("revision") == TRAINED and stable == BASELINE
        return status if ok and status.get("readyReplicas") else None

    status = wait_for(at_canary, what=f"{TRAINED} as the canary, serving", timeout=240)
    weight = status["canary"].get("weight")
    stage.note(
        f"stable {BASELINE}, canary {TRAINED} at {weight}% ({status.get('phase')})",
        phase=status.get("phase"),
        stable=BASELINE,
        canary=TRAINED,
        weight=weight,
    )
    demo.found["url"] = _serving_url(demo)
    seen: dict[str, int] = {}
    replies: dict[str, str] = {}
    errors: list[str] = []

    def both_versions() -> bool:
        try:
            version, reply = ask(demo.found["url"])
        except (ServingError, httpx.TransportError) as exc:
            # The canary's routes reach the pod within seconds; until its adapter is loaded
            # a request routed to it may fail. Counted, shown if nothing else comes.
            errors.append(str(exc))
            return False
        seen[version] = seen.get(version, 0) + 1
        replies[version] = reply
        return {BASELINE, TRAINED} <= set(seen)

    wait_for(
        both_versions,
        what=lambda: f"requests answered by both versions (answered: {seen}; {_last(errors)})",
        timeout=90,
        every=0.2,
    )
    if errors:
        stage.note(f"{len(errors)} requests failed while the canary loaded; last: {errors[-1]}")
    stage.note(
        f"{sum(seen.values())} requests ({QUESTION!r}) answered by "
        + ", ".join(f"{v} {n}x" for v, n in sorted(seen.items())),
        answeredBy=seen,
    )
    for version, reply in sorted(replies.items()):
        stage.note(f"{version}: {reply!r}", version=version, reply=reply)


def promote(demo: Demo, stage: Stage) -> None:
    action = f"{ANNOTATION_ROLLOUT_ACTION}=promote"
    demo.kubectl("annotate", "infd", INFERENCEDEPLOYMENT, "-n", NAMESPACE, action)
    stage.note(f"kubectl annotate infd {INFERENCEDEPLOYMENT} {action}")

    def promoted() -> dict[str, Any] | None:
        status = demo.status("inferencedeployments", INFERENCEDEPLOYMENT)
        stable = (status.get("stable") or {}).get("revision")
        ok = stable == TRAINED and "canary" not in status and status.get("phase") == "Healthy"
        return status if ok else None

    status = wait_for(promoted, what=f"{TRAINED} promoted", timeout=120)
    stage.note(f"stable {TRAINED}, {status['phase']}", phase=status["phase"], stable=TRAINED)


def chat(demo: Demo, stage: Stage) -> None:
    """A chat completion through the serving pod, once the pod routes the served name to the
    promoted version alone.

    The operator's status follows what it wrote to the serving ConfigMap; the pod re-reads
    the mounted file only after the kubelet refreshes the volume, so until then a request
    may still be split between the two versions. The pod's ``/readyz`` reports the routes
    in effect."""
    url = demo.found.get("url") or _serving_url(demo)
    routes: dict[str, dict[str, int]] = {}
    errors: list[str] = []

    def only_trained() -> bool:
        try:
            routes.update(applied_routes(url))
        except (ServingError, httpx.TransportError) as exc:
            errors.append(str(exc))
            return False
        return {v for v, weight in routes.get(SERVED, {}).items() if weight} == {TRAINED}

    wait_for(
        only_trained,
        what=lambda: (
            f"the pod routing {SERVED} to {TRAINED} alone (routes: {routes}; {_last(errors)})"
        ),
        timeout=120,
        every=0.5,
    )
    stage.note(f"the serving pod routes {SERVED} to {TRAINED} alone", routes=routes)
    answer: dict[str, str] = {}
    answer["version"], answer["reply"] = ask(url)
    if answer["version"] != TRAINED:
        raise RuntimeError(f"{answer['version']} answered, though the pod routes {routes}")
    stage.note(f"POST {url}/v1/chat/completions model={SERVED}: {QUESTION!r}", url=url)
    stage.note(
        f"{answer['version']} answered: {answer['reply']!r}",
        version=answer["version"],
        reply=answer["reply"],
    )


class ServingError(Exception):
    """The serving pod answered with an error."""


def _last(errors: list[str]) -> str:
    return f"last error: {errors[-1]}" if errors else "no errors"


def ask(url: str) -> tuple[str, str]:
    """One chat completion; the adapter version that answered and its reply."""
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": SERVED,
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 8,
            "temperature": 0,
        },
        timeout=30,
    )
    if response.status_code != 200:
        raise ServingError(f"{response.status_code} from {url}: {response.text[:300]}")
    reply = response.json()["choices"][0]["message"]["content"]
    return response.headers.get("x-kubetune-adapter-version", ""), reply


def applied_routes(url: str) -> dict[str, dict[str, int]]:
    """The routes the serving pod has in effect: served name -> {version: weight}."""
    response = httpx.get(f"{url}/readyz", timeout=10)
    if response.status_code not in (200, 503):
        raise ServingError(f"{response.status_code} from {url}/readyz: {response.text[:300]}")
    return response.json().get("routes") or {}  # type: ignore[no-any-return]


def _serving_url(demo: Demo) -> str:
    """The serving pod's address: its IP (the agent's host) and its HTTP port."""
    pods = client.CoreV1Api(demo.api).list_namespaced_pod(
        NAMESPACE, label_selector=f"kubetune.io/inferencedeployment={INFERENCEDEPLOYMENT}"
    )
    for pod in pods.items:
        if pod.status.pod_ip and pod.status.phase == "Running":
            ports = [p.container_port for p in pod.spec.containers[0].ports or []]
            return f"http://{pod.status.pod_ip}:{ports[0] if ports else SERVING_PORT}"
    raise RuntimeError(f"no running pod of InferenceDeployment {INFERENCEDEPLOYMENT}")


def summarize(demo: Demo, stage: Stage) -> None:
    """What a user would look at: ``kubectl get kubetune`` and the artifact's files in S3."""
    table = demo.kubectl("get", "kubetune", "-n", NAMESPACE)
    stage.timeline.event(stage.name, "info", text="kubectl get kubetune", table=table)
    console = stage.timeline.console
    console.print(f"\n$ kubectl get kubetune -n {NAMESPACE}", style="bold", highlight=False)
    console.out(table.rstrip(), highlight=False)
    uri = demo.found.get("artifact") or (demo.get("adapters", TRAINED) or {})["spec"]["uri"]
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    listing = demo.s3.info.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    files = [
        {"key": o["Key"].removeprefix(prefix), "size": o["Size"]}
        for o in listing.get("Contents", [])
    ]
    stage.timeline.event(stage.name, "info", text="artifact", uri=uri, files=files)
    console.print(f"\nThe adapter's artifact: {uri}", style="bold", soft_wrap=True)
    for item in files:
        console.out(f"  {item['size']:>12,d}  {item['key']}", highlight=False)
