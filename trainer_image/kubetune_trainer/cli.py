"""``kubetune-train``: train (the default) or only validate the data of a FineTuneJob.

    kubetune-train --config job.yaml                 # train; resume if checkpoints exist
    kubetune-train validate --config job.yaml [--report report.json]

Exit status 0 on success (validate: the data is valid); 3 on a failure that a retry would
meet again (invalid spec or data, missing base model, denied access, out of memory, NaN
loss), so the Job fails at once; 1 on other failures; 2 on bad usage. A failure's reason and
message are also written as JSON to the termination-message path.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from kubetune.api import OverLength, Reason
from kubetune_trainer import distributed, launching, termination
from kubetune_trainer.errors import TrainerError
from kubetune_trainer.jobspec import load_spec
from kubetune_trainer.settings import RunSettings

COMMANDS = ("train", "validate")
EXIT_PERMANENT = launching.EXIT_PERMANENT
log = logging.getLogger("kubetune_trainer")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubetune-train", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        command = commands.add_parser(name)
        command.add_argument(
            "--config",
            type=Path,
            required=True,
            help="a FineTuneJob manifest, or just its spec (YAML or JSON)",
        )
        command.add_argument("--workdir", type=Path, help="local scratch directory")
        command.add_argument(
            "--termination-path",
            type=Path,
            help="where the JSON summary goes (default /dev/termination-log)",
        )
        command.add_argument(
            "--over-length",
            type=OverLength,
            choices=list(OverLength),
            help="records over maxSeqLength tokens: truncate or reject (default: the spec)",
        )
    train = commands.choices["train"]
    train.add_argument("--run-id", help="sub-prefix of output.uri (default: from the spec)")
    train.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    train.add_argument(
        "--progress-interval", type=float, help="seconds between progress reports (default 10)"
    )
    commands.choices["validate"].add_argument(
        "--report", type=Path, help="write the full JSON report here (default: stdout)"
    )
    return parser


def _settings(args: argparse.Namespace) -> RunSettings:
    settings = RunSettings.from_environment()
    overrides = {
        "workdir": args.workdir,
        "termination_path": args.termination_path,
        "over_length": args.over_length,
        "run_id": getattr(args, "run_id", None),
        "metrics_port": getattr(args, "metrics_port", None),
        "progress_interval": getattr(args, "progress_interval", None),
    }
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kubetune-train`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in (*COMMANDS, "-h", "--help"):
        argv.insert(0, "train")
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("KUBETUNE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = _settings(args)
    signal.signal(signal.SIGTERM, _terminated)
    if args.command == "train" and (workers := _workers(argv)) is not None:
        return launching.launch(workers, settings.termination_path)
    try:
        spec = load_spec(args.config)
        if args.command == "validate":
            return _validate(spec, settings, args.report)
        from kubetune_trainer.runner import run_training

        summary = run_training(spec, settings)
    except TrainerError as exc:
        log.error("%s", exc)
        termination.write(settings.termination_path, termination.failure(exc), first_only=True)
        return EXIT_PERMANENT if exc.permanent else 1
    except Exception as exc:
        log.exception("the trainer failed unexpectedly")
        termination.write(settings.termination_path, termination.unexpected(exc), first_only=True)
        return 1
    if distributed.is_main():
        termination.write(settings.termination_path, summary)
    return 0


def _workers(argv: list[str]) -> list[str] | None:
    """The torchrun command when this pod needs several processes."""
    import torch

    return launching.plan_launch(os.environ, torch.cuda.device_count(), argv)


def _terminated(signum: int, frame: object) -> None:
    """Kubernetes stops a pod with SIGTERM (preemption, deletion, deadline): leave a reason."""
    raise TrainerError(Reason.PREEMPTED, "the trainer was stopped by SIGTERM")


def _validate(spec: Any, settings: RunSettings, report_path: Path | None) -> int:
    from kubetune_trainer.validating import dataset_summary, ensure_valid, prepare_inputs

    inputs = prepare_inputs(spec, settings, weights=False)
    report = inputs.dataset.report
    _emit(report, report_path)
    ensure_valid(inputs, spec)
    warnings = f"{report['warningCount']} warnings" if report["warningCount"] else ""
    termination.write(
        settings.termination_path,
        {
            "phase": "Validated",
            "reason": str(Reason.DATASET_VALID),
            "message": warnings,
            "dataset": dataset_summary(report),
        },
    )
    return 0


def _emit(report: dict[str, Any], path: Path | None) -> None:
    text = json.dumps(report, indent=2)
    if path is None:
        print(text)
    else:
        path.write_text(text + "\n")


if __name__ == "__main__":  # torchrun ... -m kubetune_trainer.cli train --config job.yaml
    raise SystemExit(main())
