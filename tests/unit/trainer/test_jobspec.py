"""The trainer reads a FineTuneJob manifest or a bare spec with the API's own models."""

from __future__ import annotations

import pytest
import yaml

from kubetune_trainer.checkpoints import _own_files
from kubetune_trainer.datasets.formats import RecordFormat
from kubetune_trainer.datasets.validation import OverLength
from kubetune_trainer.errors import TrainerError
from kubetune_trainer.jobspec import load_spec, validation_options
from kubetune_trainer.layout import RunLayout

SPEC = {
    "baseModel": {"name": "org/model"},
    "dataset": {"uri": "s3://data/train.jsonl", "format": "chat"},
    "output": {"uri": "s3://adapters/demo/"},
    "adapter": {"name": "demo", "version": "v1"},
    "training": {"maxSeqLength": 512},
}


def test_a_manifest_among_other_documents(tmp_path):
    path = tmp_path / "job.yaml"
    job = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "demo"},
        "spec": SPEC,
    }
    path.write_text(yaml.safe_dump_all([{"kind": "ConfigMap"}, job]))

    spec = load_spec(path)

    assert spec.base_model.name == "org/model"
    options = validation_options(spec, OverLength.REJECT)
    assert (options.max_seq_length, options.fmt, options.over_length) == (
        512,
        RecordFormat.CHAT,
        OverLength.REJECT,
    )


def test_a_bare_spec(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "dataset": {"uri": "s3://data/train.jsonl"}}))

    assert validation_options(load_spec(path), OverLength.TRUNCATE).fmt is None


@pytest.mark.parametrize("text", ["", "[1, 2]", "kind: FineTuneJob\nspec: {}", ": bad"])
def test_anything_else_is_invalid_spec(tmp_path, text):
    path = tmp_path / "job.yaml"
    path.write_text(text)

    with pytest.raises(TrainerError) as caught:
        load_spec(path)

    assert caught.value.reason == "InvalidSpec"


def test_run_layout():
    layout = RunLayout.of("s3://adapters/demo/", "abc")

    assert str(layout.progress) == "s3://adapters/demo/abc/progress.json"
    assert str(layout.checkpoint(120)) == "s3://adapters/demo/abc/checkpoints/step-000120"
    assert str(layout.adapter) == "s3://adapters/demo/abc/adapter/"
    assert str(layout.manifest) == "s3://adapters/demo/abc/adapter/manifest.json"


@pytest.mark.parametrize(
    ("rank", "world", "expected"),
    [
        (0, 1, ["adapter.safetensors", "optimizer.pt", "rng_state.pth"]),
        (0, 2, ["adapter.safetensors", "optimizer.pt", "rng_state_0.pth"]),
        (1, 2, ["rng_state_1.pth"]),
    ],
)
def test_each_process_uploads_its_own_rng_state_and_the_main_one_the_rest(rank, world, expected):
    names = [
        "adapter.safetensors",
        "optimizer.pt",
        "rng_state.pth",
        "rng_state_0.pth",
        "rng_state_1.pth",
    ]
    present = [n for n in names if (n == "rng_state.pth") == (world == 1) or "rng" not in n]

    assert _own_files(present, rank, world) == expected
