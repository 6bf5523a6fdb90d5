"""Pure decisions of InferenceDeployment rollouts: no I/O, no clock, no kopf.

- :mod:`~kubetune.rollout.resolving`: which Adapter answers each served name.
- :mod:`~kubetune.rollout.analyzing`: a canary's metrics and eval loss against thresholds.
- :mod:`~kubetune.rollout.traffic`: how traffic is split and how many pods each track runs.
- :mod:`~kubetune.rollout.pods`: what the serving Deployments report, as facts.
- :mod:`~kubetune.rollout.planning`: the next status, from all of the above.
"""

from kubetune.rollout.analyzing import Measurement, is_analysis_due, parse_duration
from kubetune.rollout.planning import Observed, Plan, RolloutAction, plan_rollout
from kubetune.rollout.pods import ServingPods, summarize_pods
from kubetune.rollout.resolving import Problem, Resolution, resolve_adapters, revision_of
from kubetune.rollout.traffic import effective_weight, plan_routing, split_replicas

__all__ = [
    "Measurement",
    "Observed",
    "Plan",
    "Problem",
    "Resolution",
    "RolloutAction",
    "ServingPods",
    "effective_weight",
    "is_analysis_due",
    "parse_duration",
    "plan_rollout",
    "plan_routing",
    "resolve_adapters",
    "revision_of",
    "split_replicas",
    "summarize_pods",
]
