"""The training loop: transformers' Trainer configured from the spec, with a NaN guard.

Trainer already does what a long run needs and what is easy to get subtly wrong: gradient
accumulation with loss normalised over the real token count, cosine/linear schedules with
warmup, DDP across processes, and checkpoints that carry optimizer, scheduler, RNG and data
position so a resumed run continues exactly.

Packed rows on CPU use :mod:`kubetune_trainer.packed_attention`, which computes each
example's own causal block instead of the whole row's masked square; on GPUs transformers'
own attention is kept (its fused kernels are a different trade-off, not measured here).

Unpacked examples are batched by length (``group_by_length``): every batch is padded to its
longest row, and with the long-tailed lengths of real data random batches spend much of
their compute on padding. Packed rows are all about ``maxSeqLength`` long already, so they
are drawn at random.

TRL's SFTTrainer is not used: its assistant-only loss needs ``{% generation %}`` markers in
the chat template (it swaps in templates for models it knows), where our masks work with any
template; and its packing refuses a custom collator, which validation-driven tokenization
needs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from kubetune.api import FineTuneJobSpec, Precision, Reason
from kubetune_trainer import distributed
from kubetune_trainer.datasets.packing import Collator, LengthGroupedOrder, pack, unpacked
from kubetune_trainer.datasets.preparing import PreparedDataset
from kubetune_trainer.errors import TrainerError


def training_arguments(
    spec: FineTuneJobSpec, *, output_dir: Path, has_eval: bool, precision: Precision
) -> Any:
    """TrainingArguments from the spec; local checkpoints are only a staging area."""
    import torch
    from transformers import TrainingArguments

    training = spec.training
    stop_early = training.early_stopping is not None and has_eval
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        num_train_epochs=training.effective_epochs or 1,
        max_steps=training.max_steps or -1,
        learning_rate=training.learning_rate,
        lr_scheduler_type=training.scheduler.value,
        warmup_steps=training.warmup_ratio,
        weight_decay=training.weight_decay,
        max_grad_norm=training.max_grad_norm,
        optim=training.optimizer.value,
        bf16=precision == Precision.BF16,
        fp16=precision == Precision.FP16,
        gradient_checkpointing=training.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        seed=training.seed,
        data_seed=training.seed,
        train_sampling_strategy="random" if training.packing else "group_by_length",
        logging_steps=training.logging_steps,
        logging_first_step=True,
        eval_strategy=("steps" if training.eval_steps else "epoch") if has_eval else "no",
        eval_steps=training.eval_steps,
        eval_on_start=has_eval,
        save_strategy="steps" if training.save_steps else "epoch",
        save_steps=training.save_steps or 500,
        save_total_limit=1,
        metric_for_best_model="eval_loss" if stop_early else None,
        greater_is_better=False if stop_early else None,
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        report_to=[],
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        ddp_backend="gloo"
        if distributed.world_size() > 1 and not torch.cuda.is_available()
        else None,
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
    )


def _finite_loss_trainer() -> type:
    from transformers import Trainer

    class FiniteLossTrainer(Trainer):
        """Stops with NaNLoss at the first non-finite loss (training or evaluation) instead
        of training on garbage; draws unpacked rows in a resumable length-grouped order."""

        def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            result = super().compute_loss(model, inputs, *args, **kwargs)
            loss = result[0] if isinstance(result, tuple) else result
            value = float(loss.detach().float().mean())
            if not math.isfinite(value):
                step = self.state.global_step + 1
                raise TrainerError(
                    Reason.NAN_LOSS,
                    f"the loss became {value} at step {step}; lower training.learningRate, "
                    "or check the base model's weights and the data",
                )
            return result

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            if self.args.train_sampling_strategy != "group_by_length":
                return super()._get_train_sampler(train_dataset)
            rows = train_dataset if train_dataset is not None else self.train_dataset
            args = self.args
            return LengthGroupedOrder(
                [len(row["input_ids"]) for row in rows],
                args.train_batch_size,
                args.data_seed if args.data_seed is not None else args.seed,
            )

    return FiniteLossTrainer


def build_trainer(
    model: Any,
    tokenizer: Any,
    dataset: PreparedDataset,
    spec: FineTuneJobSpec,
    args: Any,
    callbacks: list[Any],
) -> Any:
    """A Trainer over the prepared examples, packed when the spec says so."""
    from transformers import EarlyStoppingCallback

    from kubetune_trainer import packed_attention

    length = spec.training.max_seq_length
    rows = (lambda e: pack(e, length)) if spec.training.packing else unpacked
    if spec.training.packing and args.use_cpu:
        packed_attention.enable(model)
    extra = []
    if args.metric_for_best_model and spec.training.early_stopping is not None:
        stopping = spec.training.early_stopping
        extra.append(EarlyStoppingCallback(stopping.patience, stopping.threshold))
    return _finite_loss_trainer()(
        model=model,
        args=args,
        train_dataset=rows(dataset.train),
        eval_dataset=rows(dataset.validation) if dataset.validation else None,
        data_collator=Collator(pad_token_id=tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=[*callbacks, *extra],
    )
