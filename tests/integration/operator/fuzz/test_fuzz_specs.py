"""Property-based fuzzing of every kind through the real apiserver and the real operator.

Each example is a valid spec with one or two hostile mutations (see
:mod:`support.specfuzz`), created in a namespace the session operator watches. The
property: the apiserver rejects it with a reason that names a field, or it is accepted and
the operator settles it with a phase and conditions that carry reasons, without a handler
failing, without the process dying, and without writing to it over and over.

Examples are derandomized so CI tries the same inputs every run; set KUBETUNE_FUZZ_EXAMPLES
(per kind) and KUBETUNE_FUZZ_SEED for longer, different local runs, and
KUBETUNE_FUZZ_REPORT to a file path to keep the counts as JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from kubernetes import client

from localcluster import S3Info
from support.factories import s3_finetunejob
from support.handlerlog import handler_failures, log_size
from support.operator import OperatorProcess
from support.polling import eventually
from support.resources import GROUP, VERSION, create, get, status_of
from support.specfuzz import mutated
from support.trainerside import publish_artifact
from support.writes import WriteCounter

EXAMPLES = int(os.environ.get("KUBETUNE_FUZZ_EXAMPLES", "40"))
SEED = os.environ.get("KUBETUNE_FUZZ_SEED")
MAX_WRITES = 12
"""Writes to one object from its creation until it is quiet: kopf's finalizer and
bookkeeping annotations plus a few status changes; a reconcile loop exceeds it quickly."""
QUIET_SECONDS = 3.0
ACTION = "kubetune.io/rollout-action"


@dataclass
class Kind:
    """One kind to fuzz: a valid object, known conflicts, and what settled means for it."""

    plural: str
    base: dict[str, Any]
    conflicts: list[dict[str, Any]]
    settled: Callable[[dict[str, Any]], bool]
    actions: bool = False
    """Whether to set the rollout-action annotation too (a user's input like the spec)."""


@dataclass
class Tally:
    """What was tried, what the apiserver said, and what the operator did with it."""

    tried: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    accepted: list[tuple[str, str, list[str]]] = field(default_factory=list)


def _has_reasons(status: dict[str, Any]) -> bool:
    conditions = status.get("conditions") or []
    return bool(conditions) and all(c.get("reason") for c in conditions)


def _settled(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    return (
        bool(status.get("phase"))
        and _has_reasons(status)
        and status.get("observedGeneration") == obj["metadata"]["generation"]
    )


def _adapter_settled(obj: dict[str, Any]) -> bool:
    """Verified, refused, or waiting for S3 with the reason in its conditions."""
    status = obj.get("status") or {}
    return bool(status.get("phase")) and _has_reasons(status)


def _kinds(bucket: str, s3: S3Info, adapter_uri: str, digest: str) -> list[Kind]:
    access = {"endpoint": s3.endpoint, "credentialsSecretRef": {"name": "s3-creds"}}
    ftj = s3_finetunejob("base", bucket, s3.endpoint)
    adapter = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Adapter",
        "metadata": {"name": "base", "labels": {"kubetune.io/adapter-family": "fz"}},
        "spec": {
            "baseModel": {"name": "kubetune/tiny-llama", "revision": "main"},
            "uri": adapter_uri,
            "digest": digest,
            "lora": {"r": 8, "alpha": 16, "targetModules": ["q_proj", "v_proj"]},
            "metrics": {"evalLoss": 0.4, "trainedTokens": 100},
            "source": {"fineTuneJob": "support-bot"},
            "deletionPolicy": "Retain",
            **access,
        },
    }
    infd = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceDeployment",
        "metadata": {"name": "base"},
        "spec": {
            "baseModel": {"name": "kubetune/tiny-llama", **access},
            "runtime": {"type": "kubetune", "args": ["--log-level", "info"], "maxLoraRank": 16},
            "replicas": 1,
            "resources": {"gpus": 0, "cpu": "100m", "memory": "256Mi"},
            "adapters": [
                {"name": "pinned", "adapterRef": "fz-ready"},
                {"name": "follow", "selector": {"family": "fz"}},
            ],
            "rollout": {
                "steps": [{"weight": 10, "pause": "1m"}, {"weight": 50, "pause": "1m"}],
                "analysis": {"prometheusUrl": "http://127.0.0.1:1", "interval": "30s"},
            },
        },
    }
    return [
        Kind(
            "finetunejobs",
            ftj,
            [
                {"training": {"epochs": 2, "maxSteps": 10}},
                {"method": "lora", "quantization": {"bits": 4}},
                {"method": "qlora", "resources": {"gpus": 0}},
                {"dataset": {"evalUri": f"s3://{bucket}/eval.jsonl", "validationSplit": 0.2}},
                {"training": {"earlyStopping": {"patience": 2}}, "dataset": {"validationSplit": 0}},
                {"quantization": {"bits": 8, "type": "nf4"}},
                {"lora": {"targetModules": ["all-linear", "q_proj"]}},
                {"suspend": True},
                {"image": "registry.invalid/trainer:0"},
                {"resources": {"nodes": 3, "gpus": 2}},
                {"baseModel": {"tokenSecretRef": {"name": "absent", "key": "token"}}},
                {"output": {"credentialsSecretRef": {"name": "s3-creds", "namespace": "other"}}},
            ],
            _settled,
        ),
        Kind(
            "adapters",
            adapter,
            [
                {"digest": "sha256:" + "0" * 64},
                {"uri": f"s3://{bucket}/nothing/here/"},
                {"credentialsSecretRef": {"name": "absent"}},
                {"credentialsSecretRef": {"name": "s3-creds", "namespace": "kube-system"}},
                {"lora": {"targetModules": ["all-linear", "q_proj"]}},
            ],
            _adapter_settled,
        ),
        Kind(
            "inferencedeployments",
            infd,
            [
                {
                    "adapters": [
                        {"name": "x", "adapterRef": "fz-ready", "selector": {"family": "a"}}
                    ]
                },
                {"adapters": [{"name": "x", "adapterRef": "a"}, {"name": "x", "adapterRef": "b"}]},
                {"rollout": {"steps": [{"weight": 50}, {"weight": 10}]}},
                {"runtime": {"type": "vllm", "maxLoraRank": 4}},
                {"adapters": [{"name": "missing", "adapterRef": "does-not-exist"}]},
                {"gateway": {"name": "gw", "namespace": "other"}},
                {"runtime": {"image": "registry.invalid/server:0"}},
            ],
            _settled,
            actions=True,
        ),
    ]


def _check_rejection(exc: client.ApiException) -> str | None:
    """A problem with how the apiserver refused an object; None when it said why."""
    if exc.status not in (400, 413, 422):
        return f"HTTP {exc.status}: {exc.body!r:.300}"
    try:
        status = json.loads(exc.body)
    except (TypeError, ValueError):
        return f"HTTP {exc.status} without a Status body: {exc.body!r:.300}"
    if not status.get("message") or not status.get("reason"):
        return f"HTTP {exc.status} without a reason: {status}"
    if exc.status == 422:
        causes = (status.get("details") or {}).get("causes") or []
        if not causes or not all(c.get("message") and c.get("field") for c in causes):
            return f"422 whose causes do not name a field: {status}"
    return None


def _fuzz_kind(api: client.ApiClient, namespace: str, kind: Kind, tally: Tally) -> None:
    names = iter(range(10**6))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        example=mutated(kind.base, kind.conflicts),
        strict=st.booleans(),
        action=st.none() | st.sampled_from(["promote", "abort", ""]) | st.text(max_size=16),
    )
    def attempt(
        example: tuple[dict[str, Any], list[str]], strict: bool, action: str | None
    ) -> None:
        body, mutations = example
        name = f"fz-{kind.plural[:3]}-{next(names)}"
        body["metadata"]["name"] = name
        if kind.actions and action is not None:
            body["metadata"]["annotations"] = {ACTION: action}
            mutations = [*mutations, f"annotate {ACTION}={action!r}"]
        tally.tried[kind.plural] = tally.tried.get(kind.plural, 0) + 1
        try:
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                kind.plural,
                body,
                field_validation="Strict" if strict else None,
            )
        except client.ApiException as exc:
            tally.rejected[kind.plural] = tally.rejected.get(kind.plural, 0) + 1
            problem = _check_rejection(exc)
            assert problem is None, f"{name} {mutations}: {problem}"
            return
        tally.accepted.append((kind.plural, name, mutations))

    if SEED is not None:
        attempt = seed(int(SEED))(attempt)
    attempt()


def test_fuzzed_specs_are_rejected_with_a_reason_or_settled_by_the_operator(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    s3: S3Info,
    bucket: str,
    s3_secret: str,
) -> None:
    log_start = log_size(operator)
    uri, digest = publish_artifact(
        s3.client(), f"s3://{bucket}/adapters/fz/", "run1", {"adapter_config.json": b'{"r": 8}'}
    )
    kinds = _kinds(bucket, s3, uri, digest)
    ready = {**kinds[1].base, "metadata": {**kinds[1].base["metadata"], "name": "fz-ready"}}
    create(api_client, namespace, "adapters", ready)
    tally = Tally()
    with WriteCounter(api_client, namespace, [k.plural for k in kinds]) as writes:
        for kind in kinds:
            _fuzz_kind(api_client, namespace, kind, tally)
        settled = {k.plural: k.settled for k in kinds}

        def all_settled() -> bool:
            unsettled = [
                f"{plural}/{name} {mutations}: {status_of(api_client, namespace, plural, name)}"
                for plural, name, mutations in tally.accepted
                if not settled[plural](get(api_client, namespace, plural, name))
            ]
            assert not unsettled, "\n".join(unsettled)
            return True

        eventually(all_settled, timeout=90, what="every accepted object settled")
        eventually(
            lambda: writes.quiet_for() >= QUIET_SECONDS,
            timeout=60,
            what=f"no object written for {QUIET_SECONDS} s (no reconcile loop)",
        )
        counts = writes.counts()
    busiest = max(counts.items(), key=lambda item: item[1])
    _report(tally, busiest)
    assert operator.ready(), "the operator process died"
    assert not handler_failures(operator, log_start, namespace)
    kopf_errors = [
        f"{e.involved_object.name}: {e.message}"
        for e in client.CoreV1Api(api_client).list_namespaced_event(namespace).items
        if e.type == "Error"
    ]
    assert not kopf_errors, "handlers failed"
    too_many = {key: n for key, n in counts.items() if n > MAX_WRITES}
    assert not too_many, f"objects written more than {MAX_WRITES} times: {too_many}"
    assert sum(tally.tried.values()) == 3 * EXAMPLES
    assert tally.accepted, "no example was accepted: the operator side went untested"
    assert sum(tally.rejected.values()), "no example was rejected: the apiserver side went untested"


def _report(tally: Tally, busiest: tuple[str, int]) -> None:
    report = {
        "examplesPerKind": EXAMPLES,
        "seed": SEED or "derandomized",
        "tried": tally.tried,
        "rejectedByApiserver": tally.rejected,
        "acceptedAndSettled": len(tally.accepted),
        "mostWritesToOneObject": {"object": busiest[0], "writes": busiest[1]},
    }
    print(json.dumps(report))
    target = os.environ.get("KUBETUNE_FUZZ_REPORT")
    if target:
        Path(target).write_text(json.dumps(report, indent=2) + "\n")
