"""Stream Trainer checkpoints to S3 and bring the newest complete one back on restart.

A checkpoint is whatever transformers' Trainer saves (adapter weights, optimizer,
scheduler, every process's RNG state, and trainer_state.json with the step and epoch, from
which the Trainer skips the batches already seen), uploaded under
``checkpoints/step-<n>/``. It counts only once ``COMPLETE`` exists: that marker (JSON with
the step, the data digest and the file sizes) is
written last, after every process has uploaded its part, so a pod killed mid-upload leaves
an incomplete checkpoint that is never resumed from. Older checkpoints are pruned after a
newer one is complete.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from kubetune.artifacts import safe_relative_path
from kubetune_trainer import distributed
from kubetune_trainer.layout import CHECKPOINT_PREFIX, RunLayout
from kubetune_trainer.storage import ObjectNotFoundError, ObjectStore

MARKER = "COMPLETE"
KEEP = 2
log = logging.getLogger(__name__)


def _rng_file(rank: int, world_size: int) -> str:
    """The RNG state file Trainer writes for a process."""
    return "rng_state.pth" if world_size == 1 else f"rng_state_{rank}.pth"


def _own_files(names: list[str], rank: int, world_size: int) -> list[str]:
    """What a process uploads: its RNG state, and (the main process) everything shared."""
    rng_files = {_rng_file(r, world_size) for r in range(world_size)}
    mine = [n for n in names if n == _rng_file(rank, world_size)]
    if rank == 0:
        mine += [n for n in names if n not in rng_files]
    return sorted(mine)


def complete_steps(store: ObjectStore, layout: RunLayout) -> list[int]:
    """Steps of the checkpoints whose marker exists, oldest first."""
    steps = []
    for name in store.list(layout.checkpoints):
        directory, _, file = name.partition("/")
        digits = directory.removeprefix(CHECKPOINT_PREFIX)
        if file == MARKER and directory.startswith(CHECKPOINT_PREFIX) and digits.isdigit():
            steps.append(int(digits))
    return sorted(steps)


def read_marker(store: ObjectStore, layout: RunLayout, step: int) -> dict[str, Any]:
    """The marker of a complete checkpoint."""
    return json.loads(store.get_bytes(layout.checkpoint(step).join(MARKER)))


def _safe_files(marker: Any) -> dict[str, int] | None:
    """The marker's files if each is a plain relative path with a size; None otherwise. The
    marker comes from S3: a name such as ``../../x`` must not choose where a download lands."""
    files = marker.get("files") if isinstance(marker, dict) else None
    if not isinstance(files, dict):
        return None
    try:
        return {safe_relative_path(name): int(size) for name, size in files.items()}
    except (TypeError, ValueError):
        return None


def restore_newest(
    store: ObjectStore, layout: RunLayout, local_root: Path, dataset_sha256: str
) -> tuple[Path, dict[str, Any]] | None:
    """Download the newest complete checkpoint trained on this data, if any."""
    for step in reversed(complete_steps(store, layout)):
        try:
            marker = read_marker(store, layout, step)
        except ObjectNotFoundError:
            continue
        except ValueError:
            log.warning("checkpoint at step %d has an unreadable marker; not resuming it", step)
            continue
        files = _safe_files(marker)
        if files is None:
            log.warning(
                "checkpoint at step %d lists files outside its directory; not resuming it", step
            )
            continue
        if marker.get("datasetSha256") != dataset_sha256:
            log.warning("checkpoint at step %d was trained on other data; not resuming it", step)
            continue
        directory = local_root / f"checkpoint-{step}"
        prefix = layout.checkpoint(step)
        for name, size in files.items():
            target = directory / name
            if not (target.is_file() and target.stat().st_size == size):
                store.download_file(prefix.join(name), target)
        return directory, marker
    return None


def prune(store: ObjectStore, layout: RunLayout, keep: int = KEEP) -> None:
    """Delete all but the newest ``keep`` complete checkpoints, and incomplete older ones."""
    complete = complete_steps(store, layout)
    kept = set(complete[-keep:])
    newest = max(kept, default=-1)
    present = {name.partition("/")[0] for name in store.list(layout.checkpoints)}
    for directory in present:
        digits = directory.removeprefix(CHECKPOINT_PREFIX)
        if not digits.isdigit():
            continue
        step = int(digits)
        if step not in kept and step < newest:
            store.delete_prefix(layout.checkpoint(step))


class CheckpointUploader(TrainerCallback):
    """Uploads each checkpoint the Trainer saves, then marks it complete and tells
    ``on_complete`` (the progress report) where it is."""

    def __init__(
        self,
        store: ObjectStore,
        layout: RunLayout,
        *,
        run_id: str,
        dataset_sha256: str,
        on_complete: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.layout = layout
        self.run_id = run_id
        self.dataset_sha256 = dataset_sha256
        self.on_complete = on_complete

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Every process uploads its part; the main process writes the marker last."""
        step = state.global_step
        local = Path(args.output_dir) / f"checkpoint-{step}"
        prefix = self.layout.checkpoint(step)
        distributed.barrier()  # every process has written its RNG state
        names = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
        for name in _own_files(names, distributed.rank(), distributed.world_size()):
            self.store.upload_file(local / name, prefix.join(name))
        distributed.barrier()
        if not distributed.is_main():
            return
        marker = {
            "step": step,
            "epoch": state.epoch,
            "runId": self.run_id,
            "datasetSha256": self.dataset_sha256,
            "worldSize": distributed.world_size(),
            "files": {n: s for n, s in self.store.list(prefix).items() if n != MARKER},
        }
        self.store.put_bytes(json.dumps(marker, indent=2).encode(), prefix.join(MARKER))
        if self.on_complete is not None:
            self.on_complete(f"{prefix}/")
        prune(self.store, self.layout)
        log.info("checkpoint at step %d saved to %s", step, prefix)
