"""Report training progress where the operator can read it without credentials in the pod.

The main process keeps the latest numbers (fed by a Trainer callback) and a background
thread publishes them every few seconds: as ``progress.json`` in S3, shaped exactly like the
API's ``FineTuneJob.status.progress`` so the operator copies it without translating (plus
``checkpointUri`` and ``trainedTokens``, which the operator copies into the status beside
it), and as gauges on a Prometheus endpoint. In a terminal a rich progress bar shows the
same numbers. A restarted pod continues from the run's last report, so a resumed run never
reports step 0 while it loads.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from transformers import TrainerCallback

from kubetune.api import Progress
from kubetune_trainer.storage import ObjectNotFoundError, ObjectStore, S3Uri

log = logging.getLogger(__name__)


@dataclass
class ProgressState:
    """The latest numbers, and where this session of the run started (for rates)."""

    step: int = 0
    total_steps: int | None = None
    epoch: float | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    tokens: int = 0
    checkpoint_uri: str | None = None
    """The newest complete checkpoint: where the next attempt resumes from."""
    session_start: float = field(default_factory=time.monotonic)
    session_step: int = 0
    session_tokens: int = 0

    def snapshot(self, now: float | None = None) -> Progress:
        """The API's view of the numbers; rates count only this session's work."""
        elapsed = (now if now is not None else time.monotonic()) - self.session_start
        steps_done = self.step - self.session_step
        rate = (self.tokens - self.session_tokens) / elapsed if elapsed > 0 else None
        eta = None
        if self.total_steps and steps_done > 0:
            eta = round(elapsed / steps_done * max(0, self.total_steps - self.step))
        percent = min(100, 100 * self.step // self.total_steps) if self.total_steps else 0
        return Progress(
            step=self.step,
            total_steps=self.total_steps,
            percent=percent,
            epoch=round(self.epoch, 4) if self.epoch is not None else None,
            train_loss=_finite(self.train_loss),
            eval_loss=_finite(self.eval_loss),
            learning_rate=self.learning_rate,
            tokens_per_second=round(rate, 2) if rate is not None else None,
            eta_seconds=eta,
            updated_at=datetime.now(UTC),
        )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class Metrics:
    """The Prometheus gauges of one run, on a registry of their own."""

    def __init__(self, run_id: str) -> None:
        self.registry = CollectorRegistry()
        labels = ["run_id"]

        def gauge(name: str, doc: str) -> Any:
            return Gauge(f"kubetune_trainer_{name}", doc, labels, registry=self.registry).labels(
                run_id
            )

        self.step = gauge("step", "Optimizer steps completed.")
        self.total_steps = gauge("total_steps", "Optimizer steps planned.")
        self.epoch = gauge("epoch", "Fractional epochs completed.")
        self.train_loss = gauge("train_loss", "Latest training loss.")
        self.eval_loss = gauge("eval_loss", "Latest evaluation loss.")
        self.learning_rate = gauge("learning_rate", "Current learning rate.")
        self.tokens_per_second = gauge("tokens_per_second", "Training throughput.")
        self.eta_seconds = gauge("eta_seconds", "Estimated seconds to completion.")
        self.tokens = Counter(
            "kubetune_trainer_tokens", "Tokens trained on.", labels, registry=self.registry
        ).labels(run_id)
        self._tokens_seen = 0

    def update(self, progress: Progress, tokens: int) -> None:
        """Set every gauge that has a value."""
        for name in (
            "step",
            "total_steps",
            "epoch",
            "train_loss",
            "eval_loss",
            "learning_rate",
            "tokens_per_second",
            "eta_seconds",
        ):
            value = getattr(progress, name)
            if value is not None:
                getattr(self, name).set(value)
        if tokens > self._tokens_seen:
            self.tokens.inc(tokens - self._tokens_seen)
            self._tokens_seen = tokens


class ProgressPublisher:
    """Publishes the state every ``interval`` seconds, and on demand, from the main process."""

    def __init__(
        self,
        store: ObjectStore,
        target: S3Uri,
        *,
        run_id: str,
        interval: float,
        metrics_port: int | None = None,
    ) -> None:
        self.state = ProgressState()
        self.store = store
        self.target = target
        self.interval = interval
        self.metrics = Metrics(run_id)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._server: Any = None
        if metrics_port is not None:
            self._server, _ = start_http_server(metrics_port, registry=self.metrics.registry)

    def update(self, **fields: Any) -> None:
        """Change some numbers (thread-safe)."""
        with self._lock:
            for name, value in fields.items():
                setattr(self.state, name, value)

    def start_session(self, step: int, tokens: int) -> None:
        """Rates and ETA count from here (after a resume, not from step 0)."""
        self.update(
            step=step,
            tokens=tokens,
            session_start=time.monotonic(),
            session_step=step,
            session_tokens=tokens,
        )

    def publish(self, *, retry: bool = False) -> Progress:
        """Write the current progress to S3 and the gauges now. Only the first report rides
        out an S3 outage (``retry``); a later one that fails is replaced by the next, and
        must not delay the end of a run that S3 has already failed."""
        with self._lock:
            progress = self.state.snapshot()
            tokens = self.state.tokens
            checkpoint = self.state.checkpoint_uri
        self.metrics.update(progress, tokens)
        report = progress.model_dump(mode="json", exclude_none=True)
        report["trainedTokens"] = tokens
        if checkpoint is not None:
            report["checkpointUri"] = checkpoint
        self.store.put_bytes(json.dumps(report).encode(), self.target, retry=retry)
        return progress

    def start(self) -> None:
        """Continue from the run's last report, publish once (so that S3 problems surface
        before training) and keep publishing."""
        self._continue_last_report()
        self.publish(retry=True)
        self._thread.start()

    def _continue_last_report(self) -> None:
        """Take the numbers of a previous attempt's last report, if there is one."""
        try:
            report = json.loads(self.store.get_bytes(self.target))
            last = Progress.model_validate_known(report)
        except ObjectNotFoundError:
            return
        except ValueError:  # unreadable: the first report of this attempt replaces it
            log.warning("the last progress report at %s is unreadable", self.target)
            return
        tokens = report.get("trainedTokens")
        self.update(
            total_steps=last.total_steps,
            epoch=last.epoch,
            train_loss=last.train_loss,
            eval_loss=last.eval_loss,
            checkpoint_uri=report.get("checkpointUri")
            if isinstance(report.get("checkpointUri"), str)
            else None,
        )
        self.start_session(last.step, tokens if isinstance(tokens, int) else 0)

    def stop(self) -> None:
        """Publish a last time and stop the thread and the endpoint."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            self.publish()
        except Exception:  # the run's own outcome matters more than its last report
            log.warning("could not publish the final progress", exc_info=True)
        if self._server is not None:
            self._server.shutdown()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.publish()
            except Exception:  # a failed report must not end the training
                log.warning("could not publish progress", exc_info=True)


class ProgressCallback(TrainerCallback):
    """Feeds the publisher from the Trainer, and draws a progress bar in a terminal."""

    def __init__(self, publisher: ProgressPublisher) -> None:
        self.publisher = publisher
        self.bar: Any = None
        self.task: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Record the plan and where this session starts."""
        self.publisher.update(total_steps=state.max_steps)
        self.publisher.start_session(state.global_step, state.num_input_tokens_seen)
        if sys.stdout.isatty():
            from rich.progress import Progress as Bar

            self.bar = Bar(*Bar.get_default_columns(), "{task.fields[loss]}")
            self.task = self.bar.add_task(
                "training", total=state.max_steps, completed=state.global_step, loss=""
            )
            self.bar.start()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Count the step and its tokens."""
        self.publisher.update(
            step=state.global_step, epoch=state.epoch, tokens=state.num_input_tokens_seen
        )
        if self.bar is not None:
            loss = self.publisher.state.train_loss
            self.bar.update(
                self.task,
                completed=state.global_step,
                loss=f"loss {loss:.4f}" if loss is not None else "",
            )

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        """Take the latest losses and learning rate from the Trainer's logs."""
        logs = logs or {}
        fields = {
            key: logs[name]
            for name, key in (
                ("loss", "train_loss"),
                ("eval_loss", "eval_loss"),
                ("learning_rate", "learning_rate"),
            )
            if name in logs
        }
        self.publisher.update(**fields)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.stop()
