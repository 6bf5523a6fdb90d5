"""Prometheus metrics labelled by adapter version: what a canary analysis compares.

vLLM labels its metrics with the model name only; here every request metric carries both
``served_name`` (what the client asked for, e.g. ``support-bot``) and ``adapter_version``
(what answered, e.g. ``support-bot-v4``; the base model's name for the base), so a rollout
can compare the canary's error rate and latency with the stable version's inside the same
pods::

    sum(rate(kubetune_requests_total{adapter_version="support-bot-v4",status=~"5.."}[1m]))
      / sum(rate(kubetune_requests_total{adapter_version="support-bot-v4"}[1m]))
    histogram_quantile(0.95, sum by (le) (
      rate(kubetune_request_duration_seconds_bucket{adapter_version="support-bot-v4"}[1m])))

Requests for unknown models are counted with empty labels, so a client cannot mint series.
Each server has its own registry, which keeps several servers in one process (tests) apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_REQUEST = ("served_name", "adapter_version")


class ServerMetrics:
    """The runtime's metrics, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "kubetune_requests",
            "Inference requests, by the HTTP status they ended with.",
            [*_REQUEST, "endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "kubetune_request_duration_seconds",
            "Time from receiving a request to its last byte.",
            [*_REQUEST, "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "kubetune_time_to_first_token_seconds",
            "Time from receiving a request to its first generated token.",
            _REQUEST,
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.generated_tokens = Counter(
            "kubetune_generated_tokens", "Tokens generated.", _REQUEST, registry=r
        )
        self.prompt_tokens = Counter(
            "kubetune_prompt_tokens", "Prompt tokens processed.", _REQUEST, registry=r
        )
        self.in_flight = Gauge(
            "kubetune_requests_in_flight",
            "Requests being generated.",
            ["adapter_version"],
            registry=r,
        )
        self.adapter_loaded = Gauge(
            "kubetune_adapter_loaded",
            "1 for each adapter version loaded and serving.",
            ["adapter_version"],
            registry=r,
        )
        self.adapter_failures = Counter(
            "kubetune_adapter_load_failures",
            "Adapter loads that failed, by reason.",
            ["adapter_version", "reason"],
            registry=r,
        )
        self.route_weight = Gauge(
            "kubetune_route_weight",
            "Weight of each adapter version behind a served name, as applied.",
            list(_REQUEST),
            registry=r,
        )
        self.applied_generation = Gauge(
            "kubetune_config_applied_generation",
            "The generation of the serving config in effect (-1: none given).",
            registry=r,
        )
        self.config_errors = Counter(
            "kubetune_config_errors", "Config files that could not be read or parsed.", registry=r
        )

    def set_routes(self, weights: dict[str, dict[str, int]], versions: set[str]) -> None:
        """Publish the applied routes and loaded versions, dropping series that no longer apply."""
        self.route_weight.clear()
        for name, split in weights.items():
            for version, weight in split.items():
                self.route_weight.labels(name, version).set(weight)
        self.adapter_loaded.clear()
        for version in versions:
            self.adapter_loaded.labels(version).set(1)
