"""One supervised fine-tuning run, ours or TRL's, in a process of its own; shared by the
trainer benchmarks (``trainer_vs_trl.py`` on CPU, ``gpu_qlora.py`` on a GPU).

Both sides get the same model directory, the same JSONL file of ``{"text": ...}`` records,
the same LoRA settings, optimizer, learning rate, batch, accumulation and number of optimizer
steps. Ours is the trainer's own code path (tokenizer, data preparation and packing, model
loading, TrainingArguments and Trainer, exactly as ``kubetune-train`` builds them) minus S3;
TRL's is a plain ``SFTTrainer`` with a peft ``LoraConfig`` and TRL's defaults. Checkpoint
saving is off on both sides so the timed loop is training only.

Tokens are counted the same way on both sides: the real (non-pad) tokens of every row the
collator is handed, before padding. The timed region is ``trainer.train()``; model loading and
tokenization are reported separately. Run as ``python bench/bench_sft.py JOB.json OUT.json``.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Job:
    """What one run trains; identical for both sides except ``side`` and ``packing``."""

    side: str  # "ours" | "trl"
    model_dir: str
    data_path: str
    packing: bool = False
    steps: int = 8
    batch_size: int = 4
    gradient_accumulation_steps: int = 2
    max_seq_length: int = 512
    learning_rate: float = 2e-4
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    quantization: bool = False  # 4-bit nf4 with double quantization (QLoRA)
    precision: str = "fp32"  # fp32 | bf16
    gradient_checkpointing: bool = True
    seed: int = 42
    threads: int | None = None  # torch intra-op threads; None: torch's default


@dataclass
class Result:
    """What one run measured."""

    side: str
    packing: bool
    steps: int
    tokens: int  # real tokens trained on
    rows: int  # sequences (rows) the model saw
    padded_tokens: int  # tokens including padding, as the model saw them
    train_seconds: float
    train_cpu_seconds: float  # CPU time of the process in the loop (all its threads)
    step_marks: list[tuple[float, int]]  # (seconds into the loop, tokens so far) per step
    setup_seconds: float  # model load, tokenization, trainer construction
    peak_rss_bytes: int
    peak_gpu_bytes: int | None
    final_loss: float | None


class TokenCounter:
    """Counts the real tokens and rows of every micro-batch that is trained on.

    The collator notes each batch's real tokens (the rows it is handed, before padding) and
    its padded size; a batch counts when ``training_step`` runs on it, so batches the data
    loader fetched but the loop never trained on are left out.
    """

    def __init__(self, trainer: Any) -> None:
        self.collate, self.step = trainer.data_collator, trainer.training_step
        self.pending: deque[tuple[int, int, int]] = deque()
        self.tokens = self.rows = self.padded = 0
        trainer.data_collator, trainer.training_step = self._collate, self._step

    def _collate(self, features: list[dict[str, Any]]) -> Any:
        batch = self.collate(features)
        real = sum(len(f["input_ids"]) for f in features)
        self.pending.append((real, len(features), int(batch["input_ids"].numel())))
        return batch

    def _step(self, *args: Any, **kwargs: Any) -> Any:
        real, rows, padded = self.pending.popleft()
        self.tokens, self.rows, self.padded = (
            self.tokens + real,
            self.rows + rows,
            self.padded + padded,
        )
        return self.step(*args, **kwargs)


def _step_clock(counter: TokenCounter) -> Any:
    """A callback noting, at the end of every optimizer step, the time and tokens so far
    (after the GPU finished), so the first steps (warm-up) can be told apart."""
    import torch
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[tuple[float, int]] = []

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.marks.append((time.perf_counter(), counter.tokens))

    return StepClock()


def _train_timed(trainer: Any) -> tuple[TokenCounter, Any, float, float, float]:
    """Train; the counter, the step clock, the start, wall and CPU seconds of the loop."""
    counter = TokenCounter(trainer)
    clock = _step_clock(counter)
    trainer.add_callback(clock)
    cpu, started = time.process_time(), time.perf_counter()
    trainer.train()
    return counter, clock, started, time.perf_counter() - started, time.process_time() - cpu


def _spec(job: Job) -> Any:
    from kubetune.api import FineTuneJobSpec

    return FineTuneJobSpec.model_validate(
        {
            "baseModel": {"name": "bench/small-llama", "uri": "s3://bench/model/"},
            "dataset": {"uri": "s3://bench/train.jsonl", "validationSplit": 0},
            "method": "qlora" if job.quantization else "lora",
            "lora": {
                "r": job.lora_r,
                "alpha": job.lora_alpha,
                "dropout": job.lora_dropout,
                "targetModules": job.target_modules,
            },
            "quantization": {"computeDtype": "bfloat16" if job.precision == "bf16" else "float32"}
            if job.quantization
            else None,
            "training": {
                "maxSteps": job.steps,
                "learningRate": job.learning_rate,
                "batchSize": job.batch_size,
                "gradientAccumulationSteps": job.gradient_accumulation_steps,
                "maxSeqLength": job.max_seq_length,
                "packing": job.packing,
                "gradientCheckpointing": job.gradient_checkpointing,
                "precision": job.precision,
                "seed": job.seed,
            },
            "output": {"uri": "s3://bench/out/"},
            "adapter": {"name": "bench", "version": "v1"},
        }
    )


def run_ours(job: Job, workdir: Path) -> tuple[Any, float]:
    """Our trainer as ``kubetune-train`` builds it, from local files."""
    from transformers import set_seed

    from kubetune_trainer import distributed
    from kubetune_trainer.datasets.preparing import DatasetSource, prepare_dataset
    from kubetune_trainer.jobspec import validation_options
    from kubetune_trainer.modeling import load_model, load_tokenizer, resolve_precision
    from kubetune_trainer.sources import ModelRef
    from kubetune_trainer.training import build_trainer, training_arguments

    started = time.perf_counter()
    spec = _spec(job)
    ref = ModelRef(job.model_dir)
    tokenizer = load_tokenizer(ref)
    dataset = prepare_dataset(
        DatasetSource.single(spec.dataset.uri, Path(job.data_path)),
        tokenizer,
        validation_options(spec),
        validation_split=0,
        seed=job.seed,
    )
    precision = resolve_precision(spec.training.precision)
    set_seed(job.seed)
    model = load_model(
        ref,
        lora=spec.lora,
        quantization=spec.effective_quantization,
        precision=precision,
        gradient_checkpointing=job.gradient_checkpointing,
        device=distributed.device(),
    )
    args = training_arguments(spec, output_dir=workdir, has_eval=False, precision=precision)
    args.save_strategy = "no"
    trainer = build_trainer(model, tokenizer, dataset, spec, args, callbacks=[])
    return trainer, time.perf_counter() - started


def run_trl(job: Job, workdir: Path) -> tuple[Any, float]:
    """A plain TRL SFTTrainer with peft LoRA and TRL's defaults for everything not shared."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if job.precision == "bf16" else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    if job.quantization:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": "cuda:0" if cuda else "cpu"}
    model = AutoModelForCausalLM.from_pretrained(job.model_dir, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(job.model_dir)
    config = SFTConfig(
        output_dir=str(workdir),
        per_device_train_batch_size=job.batch_size,
        gradient_accumulation_steps=job.gradient_accumulation_steps,
        max_steps=job.steps,
        learning_rate=job.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        optim="adamw_torch",
        bf16=job.precision == "bf16",
        fp16=False,
        gradient_checkpointing=job.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        seed=job.seed,
        data_seed=job.seed,
        max_length=job.max_seq_length,
        packing=job.packing,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=not cuda,
        dataloader_num_workers=0,
    )
    peft_config = LoraConfig(
        r=job.lora_r,
        lora_alpha=job.lora_alpha,
        lora_dropout=job.lora_dropout,
        target_modules="all-linear"
        if job.target_modules == ["all-linear"]
        else list(job.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=load_dataset("json", data_files=job.data_path, split="train"),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    return trainer, time.perf_counter() - started


RUNNERS = {"ours": run_ours, "trl": run_trl}


def run(job: Job) -> Result:
    """Build the side's trainer, train for ``job.steps`` optimizer steps, measure."""
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    with tempfile.TemporaryDirectory(prefix="bench-sft-") as tmp:
        trainer, setup = RUNNERS[job.side](job, Path(tmp))
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        counter, clock, started, seconds, cpu = _train_timed(trainer)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return Result(
        side=job.side,
        packing=job.packing,
        steps=trainer.state.global_step,
        tokens=counter.tokens,
        rows=counter.rows,
        padded_tokens=counter.padded,
        train_seconds=seconds,
        train_cpu_seconds=cpu,
        step_marks=[(at - started, tokens) for at, tokens in clock.marks],
        setup_seconds=setup,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        peak_gpu_bytes=torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
        final_loss=losses[-1] if losses else None,
    )


def main(argv: list[str]) -> None:
    job_path, out_path = Path(argv[0]), Path(argv[1])
    result = run(Job(**json.loads(job_path.read_text())))
    out_path.write_text(json.dumps(asdict(result)))


if __name__ == "__main__":
    main(sys.argv[1:])
