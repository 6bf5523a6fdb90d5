"""Where a run's objects live under the job's output prefix (see :mod:`kubetune.artifacts`).

    <output.uri>/<run id>/progress.json                progress, rewritten every few seconds
    <output.uri>/<run id>/checkpoints/step-<n>/...     resumable state; COMPLETE written last
    <output.uri>/<run id>/adapter/...                  the artifact; manifest.json last

The adapter has a prefix of its own so that an ``Adapter`` (and a serving pod syncing it)
sees only the artifact, never checkpoints or progress.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubetune.artifacts import ADAPTER_DIR, CHECKPOINTS_DIR, MANIFEST_NAME, PROGRESS_NAME
from kubetune_trainer.storage import S3Uri

CHECKPOINT_PREFIX = "step-"


@dataclass(frozen=True)
class RunLayout:
    """The object names of one run."""

    root: S3Uri

    @classmethod
    def of(cls, output_uri: str, run_id: str) -> RunLayout:
        """The layout of run ``run_id`` under ``output_uri``."""
        return cls(S3Uri.parse(output_uri).join(run_id))

    @property
    def progress(self) -> S3Uri:
        """The progress object."""
        return self.root.join(PROGRESS_NAME)

    @property
    def checkpoints(self) -> S3Uri:
        """The prefix of all checkpoints."""
        return self.root.join(CHECKPOINTS_DIR)

    def checkpoint(self, step: int) -> S3Uri:
        """The prefix of the checkpoint taken after ``step`` optimizer steps."""
        return self.checkpoints.join(f"{CHECKPOINT_PREFIX}{step:06d}")

    @property
    def adapter(self) -> S3Uri:
        """The artifact's prefix (what ``Adapter.spec.uri`` points at), with a slash."""
        return S3Uri(self.root.bucket, self.root.join(ADAPTER_DIR).key + "/")

    @property
    def manifest(self) -> S3Uri:
        """The artifact's manifest."""
        return self.adapter.join(MANIFEST_NAME)
