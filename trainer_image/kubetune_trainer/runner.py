"""One training run from spec to published adapter, in the order that fails cheapest first.

An existing artifact ends the run at once (re-applying a finished job retrains nothing);
then S3 is written to (progress) so denied access shows before any download; then data is
validated before the model is loaded; then the model trains, resuming from the newest
complete checkpoint; and the artifact is published with its manifest last. With several
processes, one per node downloads while the others wait, and only the main process writes
progress, checkpoint markers and the artifact.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import torch
from transformers import set_seed
from transformers.trainer_callback import PrinterCallback

from kubetune.api import FineTuneJobSpec, Reason
from kubetune.artifacts import run_id as run_id_for
from kubetune_trainer import distributed
from kubetune_trainer.artifacts import Artifact, find_artifact, publish_adapter, save_adapter
from kubetune_trainer.checkpoints import CheckpointUploader, restore_newest
from kubetune_trainer.errors import TrainerError
from kubetune_trainer.layout import RunLayout
from kubetune_trainer.modeling import load_model, resolve_precision
from kubetune_trainer.progress import ProgressCallback, ProgressPublisher
from kubetune_trainer.settings import RunSettings
from kubetune_trainer.storage import ObjectStore, Role, make_store
from kubetune_trainer.training import build_trainer, training_arguments
from kubetune_trainer.validating import (
    ValidatedInputs,
    dataset_summary,
    ensure_valid,
    prepare_inputs,
)

T = TypeVar("T")
log = logging.getLogger(__name__)


def _local_main_first(fetch: Callable[[], T]) -> T:
    """Run ``fetch`` on the node's first process, then on the others (finding it done)."""
    if distributed.is_local_main():
        result = fetch()
        distributed.barrier()
        return result
    distributed.barrier()
    return fetch()


def run_training(spec: FineTuneJobSpec, settings: RunSettings) -> dict[str, Any]:
    """Train and publish; the returned summary goes to the termination message."""
    distributed.init()
    run_id = settings.run_id or run_id_for(spec)
    layout = RunLayout.of(spec.output.uri, run_id)
    store = make_store(spec.output, Role.OUTPUT)
    existing = find_artifact(store, layout)
    if existing is not None:
        log.info("the artifact of run %s already exists; nothing to train", run_id)
        return _summary(Reason.ARTIFACT_EXISTS, run_id, existing)
    settings = replace(settings, workdir=settings.workdir / run_id)
    publisher = None
    if distributed.is_main():
        publisher = ProgressPublisher(
            store,
            layout.progress,
            run_id=run_id,
            interval=settings.progress_interval,
            metrics_port=settings.metrics_port,
        )
        publisher.start()
    try:
        inputs = _local_main_first(lambda: prepare_inputs(spec, settings))
        ensure_valid(inputs, spec)
        result = _train(spec, settings, inputs, store, layout, run_id, publisher)
    except (MemoryError, torch.OutOfMemoryError) as exc:  # host RAM, or a GPU's
        raise TrainerError(Reason.OUT_OF_MEMORY, _oom_message(spec)) from exc
    finally:
        if publisher is not None:
            publisher.stop()
    return result


def _oom_message(spec: FineTuneJobSpec) -> str:
    training = spec.training
    return (
        f"out of memory with batchSize {training.batch_size} and maxSeqLength "
        f"{training.max_seq_length}; lower them (raise gradientAccumulationSteps to keep "
        "the effective batch), enable gradientCheckpointing, or use method qlora"
    )


def _train(
    spec: FineTuneJobSpec,
    settings: RunSettings,
    inputs: ValidatedInputs,
    store: ObjectStore,
    layout: RunLayout,
    run_id: str,
    publisher: ProgressPublisher | None,
) -> dict[str, Any]:
    precision = resolve_precision(spec.training.precision)
    has_eval = bool(inputs.dataset.validation)
    set_seed(spec.training.seed)  # LoRA's initial weights are drawn when the model is wrapped
    model = load_model(
        inputs.model,
        lora=spec.lora,
        quantization=spec.effective_quantization,
        precision=precision,
        gradient_checkpointing=spec.training.gradient_checkpointing,
        device=distributed.device(),
    )
    checkpoints = settings.workdir / "checkpoints"
    args = training_arguments(spec, output_dir=checkpoints, has_eval=has_eval, precision=precision)
    record = (lambda uri: publisher.update(checkpoint_uri=uri)) if publisher is not None else None
    callbacks: list[Any] = [
        CheckpointUploader(
            store,
            layout,
            run_id=run_id,
            dataset_sha256=inputs.dataset.digest,
            on_complete=record,
        )
    ]
    if publisher is not None:
        callbacks.append(ProgressCallback(publisher))
    trainer = build_trainer(model, inputs.tokenizer, inputs.dataset, spec, args, callbacks)
    if publisher is not None and sys.stdout.isatty():
        trainer.remove_callback(PrinterCallback)  # the progress bar shows the same numbers
    restored = _local_main_first(
        lambda: restore_newest(store, layout, checkpoints, inputs.dataset.digest)
    )
    resumed_from = restored[1]["step"] if restored else None
    if resumed_from is not None:
        log.info("resuming from the checkpoint at step %d", resumed_from)
        if record is not None:
            record(f"{layout.checkpoint(resumed_from)}/")
    trainer.train(resume_from_checkpoint=str(restored[0]) if restored else None)
    final = trainer.evaluate() if has_eval else {}
    state = trainer.state
    metrics = _metrics(state, final)
    artifact = None
    if distributed.is_main():
        directory = settings.workdir / "adapter"
        save_adapter(trainer.model, inputs.tokenizer, directory)
        artifact = publish_adapter(
            store,
            layout,
            directory,
            spec,
            run_id=run_id,
            metrics=metrics,
            dataset_sha256=inputs.dataset.digest,
        )
    distributed.barrier()
    if artifact is None:
        return {"phase": "Succeeded", "reason": str(Reason.COMPLETED), "runId": run_id}
    summary = _summary(Reason.COMPLETED, run_id, artifact)
    summary.update(
        {
            "step": state.global_step,
            "trainedTokens": state.num_input_tokens_seen,
            "totalSteps": state.max_steps,
            "stoppedEarly": state.global_step < state.max_steps,
            "resumedFromStep": resumed_from,
            "initialEvalLoss": _first_eval_loss(state.log_history),
            "dataset": dataset_summary(inputs.dataset.report),
        }
    )
    return summary


def _metrics(state: Any, final: dict[str, float]) -> dict[str, float | int]:
    """Final train and eval loss, perplexity, tokens and epochs, under the manifest's
    snake_case names (the operator maps them onto ``Adapter.spec.metrics``)."""
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    eval_loss = final.get("eval_loss")
    metrics = {
        "train_loss": losses[-1] if losses else None,
        "eval_loss": eval_loss,
        "perplexity": math.exp(min(eval_loss, 700)) if eval_loss is not None else None,
        "trained_tokens": state.num_input_tokens_seen,
        "epochs": round(state.epoch, 4) if state.epoch is not None else None,
    }
    return {key: value for key, value in metrics.items() if value is not None}


def _first_eval_loss(history: list[dict[str, Any]]) -> float | None:
    return next((entry["eval_loss"] for entry in history if "eval_loss" in entry), None)


def _summary(reason: Reason, run_id: str, artifact: Artifact) -> dict[str, Any]:
    return {
        "phase": "Succeeded",
        "reason": str(reason),
        "runId": run_id,
        "artifactUri": artifact.uri,
        "manifestDigest": artifact.digest,
        "sizeBytes": artifact.manifest.size_bytes,
        "files": len(artifact.manifest.files),
        "metrics": artifact.manifest.metrics,
    }
