"""Adapters coming and going on a running server: readiness, runtime load and unload, draining,
config file changes, weighted canary splits, and bad adapters refused while serving goes on."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest

from kubetune.api import FineTuneJobSpec
from kubetune_trainer.artifacts import publish_adapter
from kubetune_trainer.layout import RunLayout
from kubetune_trainer.storage import ObjectStore
from support.loras import TINY_BASE, make_lora, upload
from support.polling import eventually
from support.tinymodel import build_tiny_model


def test_not_ready_until_every_desired_adapter_is_loaded(serve, s3, s3_source, lora_dirs):
    # The credentials Secret is not mounted yet: the adapter cannot load, so no readiness.
    server = serve(config={"adapters": [s3_source(lora_dirs["a"], "bot-a")]}, wait_ready=False)
    pending = eventually(
        lambda: (r := server.client.get("/readyz")).status_code == 503
        and r.json().get("adapters")
        and r.json(),
        what="readyz reporting the pending adapter",
    )
    assert pending["reason"] == "waiting for adapters: bot-a"
    assert pending["adapters"][0]["reason"] == "SecretNotFound"
    assert server.client.get("/livez").status_code == 200
    assert server.client.get("/startupz").status_code == 200
    assert server.complete("bot-a").status_code == 503

    server_root = server.config_path.parent
    secret = server_root / "secrets" / "s3-creds"
    secret.mkdir(parents=True)
    (secret / "AWS_ACCESS_KEY_ID").write_text(s3.access_key)
    (secret / "AWS_SECRET_ACCESS_KEY").write_text(s3.secret_key)

    eventually(lambda: server.client.get("/readyz").status_code == 200, what="ready")
    assert server.adapter("bot-a")["state"] == "Loaded"
    assert server.complete("bot-a").status_code == 200


def test_load_and_unload_at_runtime(serve, s3, s3_source, lora_dirs):
    server = serve()
    serve.mount_credentials(s3)
    baseline = server.text(TINY_BASE)

    added = server.client.post("/v1/admin/adapters", json=s3_source(lora_dirs["a"], "bot-a"))
    assert added.status_code == 200, added.text
    assert added.json()["state"] == "Loaded"
    assert added.json()["rank"] == 4
    answer_a = server.text("bot-a")
    assert answer_a != baseline

    added = server.client.post("/v1/admin/adapters", json=s3_source(lora_dirs["b"], "bot-b"))
    assert added.status_code == 200, added.text
    answer_b = server.text("bot-b")
    assert answer_b not in (answer_a, baseline)

    removed = server.client.delete("/v1/admin/adapters/bot-a")
    assert removed.status_code == 200
    assert server.complete("bot-a").status_code == 404
    assert "bot-a" not in {m["id"] for m in server.client.get("/v1/models").json()["data"]}
    assert server.text("bot-b") == answer_b
    assert server.text(TINY_BASE) == baseline
    eventually(lambda: len(server.runtime.engine.slots.slots) == 1, what="bot-a detached")

    assert server.client.delete("/v1/admin/adapters/bot-b").status_code == 200
    eventually(lambda: server.runtime.engine.slots.slots == [], what="every adapter detached")
    assert server.text(TINY_BASE) == baseline  # the bare base model again
    assert server.client.post(
        "/v1/admin/adapters", json=s3_source(lora_dirs["a"], "bot-a")
    ).status_code == 200
    assert server.text("bot-a") == answer_a


def test_an_unloaded_version_finishes_its_requests_first(serve, s3, s3_source, lora_dirs):
    serve.mount_credentials(s3)
    server = serve(config={"adapters": [s3_source(lora_dirs["a"], "bot-a")]})
    reference = server.text("bot-a", max_tokens=400)
    body = {"model": "bot-a", "prompt": "the water", "max_tokens": 400, "temperature": 0,
            "stream": True}
    with server.client.stream("POST", "/v1/completions", json=body) as stream:
        lines = stream.iter_lines()
        first = next(line for line in lines if line)
        removed = server.client.delete("/v1/admin/adapters/bot-a", params={"timeout": 30})
        assert removed.status_code == 200
        assert server.complete("bot-a").status_code == 404  # no new requests, but this one...
        rest = [line for line in lines if line]
    events = [json.loads(x.removeprefix("data: ")) for x in [first, *rest[:-1]]]
    assert "".join(e["choices"][0]["text"] for e in events) == reference  # ...ran to its end
    eventually(lambda: server.runtime.engine.slots.slots == [], what="detached after the stream")


def test_weighted_routing_splits_traffic_in_proportion(serve, s3, s3_source, lora_dirs):
    serve.mount_credentials(s3)
    adapters = [s3_source(lora_dirs["a"], "bot-v3"), s3_source(lora_dirs["b"], "bot-v4")]
    config = {"generation": 1, "adapters": adapters,
              "routes": {"bot": {"bot-v3": 90, "bot-v4": 10}}}
    server = serve(config=config)

    def split(count: int, **body) -> Counter[str]:
        return Counter(
            server.complete("bot", max_tokens=1, **body).headers["x-kubetune-adapter-version"]
            for _ in range(count)
        )

    assert split(100) == {"bot-v3": 90, "bot-v4": 10}

    # The controller moves the canary to 50% by rewriting the mounted config.
    config.update(generation=2, routes={"bot": {"bot-v3": 50, "bot-v4": 50}})
    server.config_path.write_text(json.dumps(config))
    eventually(lambda: server.state()["appliedGeneration"] == 2, what="generation 2 applied")
    assert split(100) == {"bot-v3": 50, "bot-v4": 50}

    # A user stays with one version while the weights hold.
    assert len(split(10, user="alice")) == 1


def test_a_canary_applies_only_once_loaded(serve, s3, s3_source, lora_dirs):
    serve.mount_credentials(s3)
    stable = s3_source(lora_dirs["a"], "bot-v3")
    server = serve(config={"generation": 1, "adapters": [stable],
                           "routes": {"bot": {"bot-v3": 1}}})
    canary = s3_source(lora_dirs["b"], "bot-v4")
    canary["s3"]["credentialsSecret"] = "not-mounted-yet"
    server.config_path.write_text(json.dumps({
        "generation": 2, "adapters": [stable, canary],
        "routes": {"bot": {"bot-v3": 50, "bot-v4": 50}},
    }))
    eventually(lambda: server.state()["pending"] and server.adapter("bot-v4"), what="staged")
    state = server.state()
    assert (state["generation"], state["appliedGeneration"]) == (2, 1)
    assert state["routes"] == {"bot": {"bot-v3": 1}}  # the old routes keep serving
    assert server.client.get("/readyz").status_code == 200  # and the pod stays in service
    headers = {server.complete("bot", max_tokens=1).headers["x-kubetune-adapter-version"]
               for _ in range(4)}
    assert headers == {"bot-v3"}


@pytest.fixture(scope="module")
def other_base(tmp_path_factory):
    """A model of another shape: an adapter of it cannot fit the tiny model."""
    return build_tiny_model(tmp_path_factory.mktemp("other") / "model", hidden_size=32)


def bad_adapter(kind, *, good, tiny_model, other_base, tmp_path, s3, bucket, source):
    """A config entry for an adapter that must be refused, and the reason expected."""
    if kind == "digest":
        return source(good, "bad", digest="sha256:" + "0" * 64), "DigestMismatch"
    if kind == "manifest":
        uri = upload(s3.client(), good, bucket, "no-manifest")
        s3.client().delete_object(Bucket=bucket, Key="no-manifest/manifest.json")
        return {**source(good, "bad"), "uri": uri, "digest": None}, "ManifestInvalid"
    if kind == "tampered":
        uri = upload(s3.client(), good, bucket, "tampered")
        weights = {"Bucket": bucket, "Key": "tampered/adapter_model.safetensors"}
        s3.client().put_object(**weights, Body=b"0" * 100)
        return {**source(good, "bad"), "uri": uri}, "DigestMismatch"
    if kind == "base":
        directory = make_lora(tiny_model, tmp_path / "base", seed=3, base_name="someone/else")
        return source(directory, "bad"), "BaseModelMismatch"
    if kind == "rank":
        directory = make_lora(tiny_model, tmp_path / "rank", seed=3, r=16)
        return source(directory, "bad"), "RankTooLarge"
    if kind == "shape":  # claims the right base model but was made for another shape
        directory = make_lora(other_base, tmp_path / "shape", seed=3)
        return source(directory, "bad"), "BaseModelMismatch"
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def healthy_server(serve_module, s3, s3_source, lora_dirs):
    serve_module.mount_credentials(s3)
    return serve_module(
        config={"adapters": [s3_source(lora_dirs["b"], "bot-b")]}, max_lora_rank=8
    )


@pytest.mark.parametrize("kind", ["digest", "manifest", "tampered", "base", "rank", "shape"])
def test_a_bad_adapter_is_refused_and_the_server_stays_healthy(
    kind, healthy_server, tiny_model, other_base, lora_dirs, tmp_path, s3, module_bucket, s3_source
):
    server = healthy_server
    before = server.text("bot-b")
    entry, reason = bad_adapter(
        kind,
        good=lora_dirs["a"],
        tiny_model=tiny_model,
        other_base=other_base,
        tmp_path=tmp_path,
        s3=s3,
        bucket=module_bucket,
        source=s3_source,
    )
    response = server.client.post("/v1/admin/adapters", json=entry)
    assert response.status_code == 422, response.text
    state = response.json()["state"]
    assert (state["state"], state["reason"]) == ("Failed", reason)
    assert reason in response.json()["error"]["message"]
    assert server.complete("bad").status_code == 503
    assert server.client.get("/livez").status_code == 200
    assert server.client.get("/readyz").status_code == 200
    assert server.text("bot-b") == before
    assert len(server.runtime.engine.slots.slots) == 1
    assert server.client.delete("/v1/admin/adapters/bad").status_code == 200


def test_a_bad_config_file_changes_nothing(serve, s3, s3_source, lora_dirs):
    serve.mount_credentials(s3)
    server = serve(config="adapters: [not, a, config", wait_ready=False)
    failing = eventually(
        lambda: (r := server.client.get("/readyz")).status_code == 503
        and r.json().get("configError")
        and r.json(),
        what="the config error reported",
    )
    assert "not YAML" in failing["configError"]

    good = {"generation": 1, "adapters": [s3_source(lora_dirs["a"], "bot-a")]}
    server.config_path.write_text(json.dumps(good))
    eventually(lambda: server.client.get("/readyz").status_code == 200, what="ready")
    answer = server.text("bot-a")

    server.config_path.write_text(json.dumps({"adapters": [], "routes": {"x": {"y": 1}}}))
    eventually(lambda: server.state()["configError"], what="the second error reported")
    assert "unknown versions: y" in server.state()["configError"]
    assert server.state()["appliedGeneration"] == 1
    assert server.text("bot-a") == answer


def test_an_artifact_published_by_the_trainer_is_served(
    serve, s3, s3_source, module_bucket, tiny_model, tmp_path
):
    """The contract end to end: the trainer's manifest and layout, the runtime's checks."""
    directory = make_lora(tiny_model, tmp_path / "trained", seed=5, r=4)
    spec = FineTuneJobSpec.model_validate({
        "baseModel": {"name": TINY_BASE},
        "dataset": {"uri": "s3://datasets/train.jsonl"},
        "output": {"uri": f"s3://{module_bucket}/bot/"},
        "adapter": {"name": "bot", "version": "v9"},
        "lora": {"r": 4, "alpha": 8, "targetModules": ["q_proj", "v_proj", "down_proj"]},
    })
    layout = RunLayout.of(spec.output.uri, "run1")
    artifact = publish_adapter(
        ObjectStore(s3.client()), layout, directory, spec, run_id="run1", metrics={},
        dataset_sha256="0" * 64,
    )

    serve.mount_credentials(s3)
    server = serve()
    entry = {**s3_source(directory, "bot-v9"), "uri": artifact.uri, "digest": artifact.digest}
    response = server.client.post("/v1/admin/adapters", json=entry)
    assert response.status_code == 200, response.text
    assert response.json()["digest"] == artifact.digest
    same_files = {"version": "local", "uri": str(directory)}
    assert server.client.post("/v1/admin/adapters", json=same_files).status_code == 200
    assert server.text("bot-v9") == server.text("local")


def test_the_admin_api_sets_config_and_routes_behind_a_token(serve, lora_dirs):
    server = serve(admin_token="s3cr3t")
    assert httpx.get(f"{server.url}/v1/admin/state").status_code == 401
    config = {
        "generation": 5,
        "adapters": [{"version": "v1", "uri": str(lora_dirs["a"])},
                     {"version": "v2", "uri": str(lora_dirs["b"])}],
        "routes": {"bot": {"v1": 1}},
    }
    applied = server.client.put("/v1/admin/config", json=config, params={"timeout": 30})
    assert applied.status_code == 200, applied.text
    assert applied.json()["appliedGeneration"] == 5

    routed = server.client.put("/v1/admin/routes/bot", json={"v1": 1, "v2": 1})
    assert routed.json()["routes"] == {"bot": {"v1": 1, "v2": 1}}
    versions = {server.complete("bot", max_tokens=1).headers["x-kubetune-adapter-version"]
                for _ in range(2)}
    assert versions == {"v1", "v2"}
    assert server.client.put("/v1/admin/routes/bot", json={"v9": 1}).status_code == 422

    assert server.client.delete("/v1/admin/routes/bot").status_code == 200
    assert server.complete("bot").status_code == 404
    assert server.complete("v2").status_code == 200
