"""The serving config contract: what the controller may write, and what is refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kubetune_server.config import AdapterSource, ServingConfig, load_config

DIGEST = "sha256:" + "ab" * 32


def config(**overrides):
    body = {
        "generation": 3,
        "adapters": [
            {"version": "bot-v3", "uri": "s3://adapters/bot/a/", "digest": DIGEST,
             "s3": {"endpoint": "http://minio:9000", "credentialsSecret": "s3-creds"}},
            {"version": "bot-v4", "uri": "/var/lib/kubetune/adapters/bot-v4"},
        ],
        "routes": {"bot": {"bot-v3": 90, "bot-v4": 10}},
    }
    return {**body, **overrides}


def test_a_full_config_parses_from_camel_case():
    parsed = ServingConfig.model_validate(config())
    assert parsed.adapters[0].s3.credentials_secret == "s3-creds"
    assert parsed.names() == {"bot", "bot-v3", "bot-v4"}
    assert list(parsed.routes["bot"]) == ["bot-v3", "bot-v4"]  # order kept: stable first


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"routes": {"bot": {"bot-v9": 1}}}, "unknown versions: bot-v9"),
        ({"routes": {"bot-v3": {"bot-v3": 1}}}, "has the name of an adapter version"),
        ({"routes": {"bot": {"bot-v3": 0}}}, "positive weight"),
        ({"routes": {"bot": {"bot-v3": -1}}}, "greater than or equal to 0"),
        ({"adapters": [{"version": "a", "uri": "/x"}, {"version": "a", "uri": "/y"}],
          "routes": {}}, "duplicated: a"),
        ({"adapters": [{"version": "a", "uri": "relative/dir"}], "routes": {}}, "pattern"),
        ({"adapters": [{"version": "a", "uri": "/x", "digest": "md5:1"}], "routes": {}},
         "pattern"),
        ({"adapters": [{"version": "a b", "uri": "/x"}], "routes": {}}, "pattern"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_invalid_configs_are_refused(overrides, message):
    with pytest.raises(ValidationError, match=message):
        ServingConfig.model_validate(config(**overrides))


def test_removing_an_adapter_drops_it_from_routes():
    parsed = ServingConfig.model_validate(config())
    assert parsed.without_adapter("bot-v4").routes == {"bot": {"bot-v3": 90}}
    assert parsed.without_adapter("bot-v3").without_adapter("bot-v4").routes == {}


def test_adding_an_adapter_replaces_the_same_version():
    parsed = ServingConfig.model_validate(config())
    replaced = parsed.with_adapter(AdapterSource(version="bot-v4", uri="/elsewhere"))
    assert [(a.version, a.uri) for a in replaced.adapters] == [
        ("bot-v3", "s3://adapters/bot/a/"),
        ("bot-v4", "/elsewhere"),
    ]


def test_setting_a_route_is_validated():
    parsed = ServingConfig.model_validate(config())
    assert parsed.with_route("bot", {"bot-v3": 50, "bot-v4": 50}).routes["bot"]["bot-v4"] == 50
    assert "bot" not in parsed.with_route("bot", None).routes
    with pytest.raises(ValidationError, match="unknown versions"):
        parsed.with_route("bot", {"bot-v7": 1})


def test_load_config_reads_yaml_and_treats_empty_as_empty(tmp_path):
    path = tmp_path / "serving.yaml"
    path.write_text("adapters:\n  - version: v1\n    uri: /a\nroutes:\n  bot: {v1: 1}\n")
    assert load_config(path).routes == {"bot": {"v1": 1}}
    path.write_text("")
    assert load_config(path) == ServingConfig()
    path.write_text("adapters: [unclosed")
    with pytest.raises(ValueError, match="not YAML"):
        load_config(path)
