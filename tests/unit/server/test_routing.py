"""Weighted routing: exact, interleaved splits; sticky users; only loaded versions."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from kubetune_server.routing import RouteTable, Target, WeightedChoice


@pytest.mark.parametrize(
    "weights",
    [
        {"v3": 90, "v4": 10},
        {"v3": 50, "v4": 50},
        {"v3": 3, "v4": 1},
        {"a": 5, "b": 3, "c": 2},
        {"only": 7},
    ],
)
def test_round_robin_gives_each_version_exactly_its_weight_per_cycle(weights):
    choice = WeightedChoice(weights)
    total = sum(weights.values())
    for _cycle in range(3):
        assert Counter(choice.next() for _ in range(total)) == Counter(weights)


def test_round_robin_interleaves_rather_than_bursts():
    choice = WeightedChoice({"stable": 90, "canary": 10})
    picks = [choice.next() for _ in range(100)]
    canary_at = [i for i, v in enumerate(picks) if v == "canary"]
    gaps = {b - a for a, b in pairwise(canary_at)}
    assert gaps == {10}


def test_zero_weight_versions_are_never_picked():
    choice = WeightedChoice({"v3": 1, "v4": 0})
    assert {choice.next() for _ in range(10)} == {"v3"}
    with pytest.raises(ValueError, match="positive weight"):
        WeightedChoice({"v3": 0})


def test_a_user_sticks_to_one_version():
    choice = WeightedChoice({"v3": 50, "v4": 50})
    assert len({choice.for_key("support-bot\0alice") for _ in range(20)}) == 1


def test_users_split_in_proportion():
    choice = WeightedChoice({"v3": 80, "v4": 20})
    counts = Counter(choice.for_key(f"user-{i}") for i in range(4000))
    assert 0.77 < counts["v3"] / 4000 < 0.83


def test_raising_the_canary_weight_only_moves_users_to_the_canary():
    users = [f"user-{i}" for i in range(2000)]
    before = WeightedChoice({"stable": 90, "canary": 10})
    after = WeightedChoice({"stable": 50, "canary": 50})
    moved = {(before.for_key(u), after.for_key(u)) for u in users}
    assert ("canary", "stable") not in moved
    assert ("stable", "canary") in moved


def make_table(**routes):
    return RouteTable("base-model", ["bot-v3", "bot-v4", "other-v1"], routes)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("base-model", Target("base-model", None)),
        ("bot-v4", Target("bot-v4", "bot-v4")),
        ("bot", Target("bot", "bot-v3")),
        ("nope", None),
        ("bot-v5", None),
    ],
)
def test_resolve(model, expected):
    assert make_table(bot={"bot-v3": 1}).resolve(model) == expected


def test_routes_skip_versions_that_are_not_loaded():
    table = make_table(bot={"bot-v3": 90, "bot-v9": 10}, gone={"bot-v9": 1})
    assert table.weights() == {"bot": {"bot-v3": 90}}
    assert {table.resolve("bot").version for _ in range(20)} == {"bot-v3"}
    assert table.resolve("gone") is None


def test_names_list_base_routes_and_versions():
    assert make_table(bot={"bot-v3": 1}).names() == [
        "base-model",
        "bot",
        "bot-v3",
        "bot-v4",
        "other-v1",
    ]


def test_a_user_resolves_the_same_in_every_replica():
    replicas = [make_table(bot={"bot-v3": 50, "bot-v4": 50}) for _ in range(3)]
    for user in ("alice", "bob", "carol"):
        assert len({t.resolve("bot", user=user).version for t in replicas}) == 1
