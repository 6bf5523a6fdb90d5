"""Which Adapter answers each served name, and every reason one cannot be served."""

from __future__ import annotations

from typing import Any

import pytest

from kubetune.api import Reason
from kubetune.rollout import resolve_adapters, revision_of
from support.inference import digest_of, make_adapter, make_infd

FAMILY = [{"name": "support-bot", "selector": {"family": "support-bot"}}]
PINNED = [{"name": "support-bot", "adapterRef": "support-bot-v1"}]


@pytest.mark.parametrize(
    ("adapters", "available", "expected"),
    [
        pytest.param(
            PINNED,
            [("support-bot-v1", {}), ("support-bot-v2", {})],
            "support-bot-v1",
            id="pinned-ignores-newer",
        ),
        pytest.param(
            FAMILY,
            [
                ("support-bot-v1", {"created": "2026-11-29T10:00:00Z"}),
                ("support-bot-v2", {"created": "2026-11-29T11:00:00Z"}),
            ],
            "support-bot-v2",
            id="selector-takes-newest",
        ),
        pytest.param(
            FAMILY,
            [
                ("support-bot-v1", {"created": "2026-11-29T10:00:00Z"}),
                ("support-bot-v2", {"created": "2026-11-29T11:00:00Z", "phase": "Verifying"}),
            ],
            "support-bot-v1",
            id="selector-skips-unverified",
        ),
        pytest.param(
            FAMILY,
            [
                ("support-bot-v1", {"created": "2026-11-29T10:00:00Z"}),
                ("sql-helper-v9", {"created": "2026-11-29T11:00:00Z", "family": "sql-helper"}),
            ],
            "support-bot-v1",
            id="selector-stays-in-family",
        ),
        pytest.param(
            FAMILY,
            [("support-bot-a", {}), ("support-bot-b", {})],
            "support-bot-b",
            id="same-second-tie-broken-by-name",
        ),
        pytest.param([], [("support-bot-v1", {})], "", id="base-model-only"),
    ],
)
def test_resolves(
    adapters: list[dict[str, Any]], available: list[tuple[str, dict[str, Any]]], expected: str
) -> None:
    infd = make_infd(adapters=adapters)
    resolution = resolve_adapters(infd.spec, [make_adapter(n, **f) for n, f in available])
    assert resolution.problem is None
    assert resolution.revision == expected
    for adapter in resolution.adapters:
        assert adapter.digest == digest_of(adapter.adapter_ref)


@pytest.mark.parametrize(
    ("adapters", "available", "spec", "reason", "waiting", "words"),
    [
        pytest.param(PINNED, [], {}, Reason.ADAPTER_NOT_FOUND, False, "'support-bot-v1' not found",
                     id="pinned-missing"),
        pytest.param(FAMILY, [("support-bot-v1", {"phase": "Failed"})], {},
                     Reason.ADAPTER_NOT_FOUND, False, "no Ready Adapter of family",
                     id="family-has-none-ready"),
        pytest.param(PINNED, [("support-bot-v1", {"phase": "Verifying"})], {},
                     Reason.ADAPTER_NOT_READY, True, "waiting for Adapter", id="pinned-verifying"),
        pytest.param(PINNED, [("support-bot-v1", {"phase": None})], {},
                     Reason.ADAPTER_NOT_READY, True, "(Pending)", id="pinned-without-status"),
        pytest.param(PINNED, [("support-bot-v1", {"phase": "Failed"})], {},
                     Reason.ADAPTER_NOT_READY, False, "failed", id="pinned-failed"),
        pytest.param(PINNED, [("support-bot-v1", {"base": "other/model"})], {},
                     Reason.BASE_MODEL_MISMATCH, False, "trained on other/model@main",
                     id="other-base-model"),
        pytest.param(PINNED, [("support-bot-v1", {"revision": "abc123"})], {},
                     Reason.BASE_MODEL_MISMATCH, False, "@abc123", id="other-base-revision"),
        pytest.param(PINNED, [("support-bot-v1", {"rank": 64})],
                     {"runtime": {"type": "vllm", "maxLoraRank": 32}},
                     Reason.RANK_TOO_LARGE, False, "rank 64, above runtime.maxLoraRank 32",
                     id="rank-too-large"),
    ],
)  # fmt: skip
def test_problems(
    adapters: list[dict[str, Any]],
    available: list[tuple[str, dict[str, Any]]],
    spec: dict[str, Any],
    reason: Reason,
    waiting: bool,
    words: str,
) -> None:
    infd = make_infd(adapters=adapters, **spec)
    resolution = resolve_adapters(infd.spec, [make_adapter(n, **f) for n, f in available])
    assert resolution.adapters == []
    assert resolution.problem is not None
    assert (resolution.problem.reason, resolution.problem.waiting) == (reason, waiting)
    assert words in resolution.problem.message


def test_rank_at_the_limit_is_served() -> None:
    infd = make_infd(adapters=PINNED, runtime={"type": "vllm", "maxLoraRank": 32})
    resolution = resolve_adapters(infd.spec, [make_adapter("support-bot-v1", rank=32)])
    assert resolution.problem is None


def test_several_served_names_make_one_revision_in_name_order() -> None:
    infd = make_infd(
        adapters=[
            {"name": "support-bot", "adapterRef": "support-bot-v1"},
            {"name": "sql-helper", "selector": {"family": "sql-helper"}},
        ]
    )
    resolution = resolve_adapters(
        infd.spec,
        [make_adapter("support-bot-v1"), make_adapter("sql-helper-v7", family="sql-helper")],
    )
    assert [a.name for a in resolution.adapters] == ["sql-helper", "support-bot"]
    assert resolution.revision == "sql-helper-v7,support-bot-v1"
    assert revision_of(reversed(resolution.adapters)) == resolution.revision


def test_a_deleted_adapter_is_not_selected() -> None:
    infd = make_infd(adapters=FAMILY)
    going = make_adapter("support-bot-v2", created="2026-11-29T11:00:00Z")
    going.metadata["deletionTimestamp"] = "2026-11-29T11:30:00Z"
    resolution = resolve_adapters(infd.spec, [make_adapter("support-bot-v1"), going])
    assert resolution.revision == "support-bot-v1"
