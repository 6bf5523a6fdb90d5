"""Canary rollouts of adapter versions, end to end on the real control plane: the objects
the operator creates, steps with pauses, promotion, manual promote and abort, and a new
adapter arriving mid-rollout. Serving pods run on kwok; traffic is not measured here (see
test_analysis.py for rollouts judged by a real Prometheus)."""

from __future__ import annotations

from collections.abc import Callable

from kubernetes import client

from .conftest import Adapters, Deployed, canary_at, conditions

STEPS = [{"weight": 10, "pause": "2s"}, {"weight": 50, "pause": "2s"}]
HOLD = [{"weight": 10, "pause": "1h"}, {"weight": 50, "pause": "1h"}]


def test_first_version_is_served_by_the_reference_runtime(
    api_client: client.ApiClient, adapters: Adapters, deploy: Callable[..., Deployed]
) -> None:
    adapters.publish("support-bot-v1")
    infd = deploy(steps=STEPS)

    status = infd.wait(lambda s: s.get("phase") == "Healthy", "Healthy")
    assert status["stable"]["revision"] == "support-bot-v1"
    assert "canary" not in status
    assert status["routing"] == "InPod"
    assert status["observedGeneration"] == 1
    assert conditions(status) == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("False", "Deployed"),
        "Degraded": ("False", "AsExpected"),
    }
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)
    assert status["endpoints"] == [f"http://support.{infd.namespace}.svc:8000/v1"]

    deployment = infd.deployment()
    pod = deployment.spec.template.spec
    assert pod.automount_service_account_token is False
    assert pod.containers[0].command == ["kubetune-serve"]
    assert deployment.metadata.owner_references[0].kind == "InferenceDeployment"
    config = infd.serving_config()
    assert [a["version"] for a in config["adapters"]] == ["support-bot-v1"]
    assert config["routes"] == {"support-bot": {"support-bot-v1": 100}}
    service = client.CoreV1Api(api_client).read_namespaced_service("support", infd.namespace)
    assert service.spec.selector == {"kubetune.io/inferencedeployment": "support"}
    assert "Deployed" in infd.event_reasons()


def test_steps_with_pauses_then_promotion(
    adapters: Adapters, deploy: Callable[..., Deployed]
) -> None:
    adapters.publish("support-bot-v1")
    infd = deploy(steps=STEPS)
    infd.wait(lambda s: s.get("phase") == "Healthy", "v1 Healthy")
    pods_before = infd.deployment().spec.template

    adapters.publish("support-bot-v2")
    status = infd.wait(canary_at(0, 10), "canary at step 1, 10%")
    assert status["phase"] == "Progressing"
    assert conditions(status)["Progressing"] == ("True", "CanaryProgressing")
    assert infd.routes()["support-bot"] == {"support-bot-v1": 90, "support-bot-v2": 10}

    infd.wait(canary_at(1, 50), "canary at step 2, 50%", timeout=20)
    assert infd.routes()["support-bot"] == {"support-bot-v1": 50, "support-bot-v2": 50}

    status = infd.wait(lambda s: s.get("stable", {}).get("revision") == "support-bot-v2",
                       "promoted", timeout=20)  # fmt: skip
    assert "canary" not in status
    infd.wait(lambda s: s.get("phase") == "Healthy", "Healthy after promotion")
    assert infd.routes() == {"support-bot": {"support-bot-v2": 100}}
    assert infd.deployment().spec.template == pods_before  # the canary never restarted a pod
    reasons = infd.event_reasons()
    assert reasons.count("CanaryProgressing") == 2
    assert reasons.index("CanaryProgressing") < reasons.index("Promoted")


def test_promote_by_annotation_skips_the_pauses(
    adapters: Adapters, deploy: Callable[..., Deployed]
) -> None:
    adapters.publish("support-bot-v1")
    infd = deploy(steps=HOLD)
    infd.wait(lambda s: s.get("phase") == "Healthy", "v1 Healthy")
    adapters.publish("support-bot-v2")
    infd.wait(canary_at(0, 10), "canary at 10%")

    infd.annotate("promote")
    status = infd.wait(lambda s: s.get("stable", {}).get("revision") == "support-bot-v2",
                       "promoted by annotation")  # fmt: skip
    assert conditions(status)["Progressing"] == ("False", "Promoted")
    infd.wait(lambda _: "kubetune.io/rollout-action" not in infd.annotations(),
              "annotation removed")  # fmt: skip
    assert infd.routes() == {"support-bot": {"support-bot-v2": 100}}


def test_abort_by_annotation_rolls_back_and_does_not_retry(
    adapters: Adapters, deploy: Callable[..., Deployed]
) -> None:
    adapters.publish("support-bot-v1")
    infd = deploy(steps=HOLD)
    infd.wait(lambda s: s.get("phase") == "Healthy", "v1 Healthy")
    adapters.publish("support-bot-v2")
    infd.wait(canary_at(0, 10), "canary at 10%")

    infd.annotate("abort")
    status = infd.wait(lambda s: s.get("phase") == "RolledBack", "RolledBack")
    assert status["stable"]["revision"] == "support-bot-v1"
    assert status["rolledBackRevision"] == "support-bot-v2"
    assert conditions(status)["Degraded"] == ("True", "Aborted")
    infd.wait(lambda _: "kubetune.io/rollout-action" not in infd.annotations(),
              "annotation removed")  # fmt: skip
    assert infd.routes() == {"support-bot": {"support-bot-v1": 100}}
    assert "RolledBack" in infd.event_reasons()

    # The aborted version stays the newest Ready one; it is not retried on later reconciles,
    # but a newer version is rolled out.
    adapters.publish("support-bot-v3")
    status = infd.wait(lambda s: (s.get("canary") or {}).get("revision") == "support-bot-v3",
                       "v3 canary")  # fmt: skip
    assert status["stable"]["revision"] == "support-bot-v1"


def test_a_new_adapter_mid_rollout_restarts_the_canary(
    adapters: Adapters, deploy: Callable[..., Deployed]
) -> None:
    adapters.publish("support-bot-v1")
    infd = deploy(steps=[{"weight": 10, "pause": "2s"}, {"weight": 50, "pause": "1h"}])
    infd.wait(lambda s: s.get("phase") == "Healthy", "v1 Healthy")
    adapters.publish("support-bot-v2")
    infd.wait(canary_at(1, 50), "v2 canary at step 2", timeout=20)

    adapters.publish("support-bot-v3")
    status = infd.wait(
        lambda s: (s.get("canary") or {}).get("revision") == "support-bot-v3", "v3 replaces v2"
    )
    assert (status["canary"]["step"], status["canary"]["weight"]) == (0, 10)
    assert status["stable"]["revision"] == "support-bot-v1"
    config = infd.serving_config()
    assert {a["version"] for a in config["adapters"]} == {"support-bot-v1", "support-bot-v3"}
    assert config["routes"]["support-bot"] == {"support-bot-v1": 90, "support-bot-v3": 10}
    assert "CanaryRestarted" in infd.event_reasons()
