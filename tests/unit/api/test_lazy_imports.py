"""kubetune.api builds its models on first use: a process that needs one name (a serving
pod's adapter pull needs ``Reason``) does not pay for every kind's models at start-up."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest

import kubetune.api


def test_importing_one_name_builds_no_kind() -> None:
    probe = (
        "import json, sys\n"
        "from kubetune.api import Reason\n"
        "import kubetune_server.fetching\n"
        "print(json.dumps([m for m in sys.modules if m.startswith('kubetune.api.')]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = json.loads(done.stdout)
    assert "kubetune.api.conditions" in loaded
    assert not {"kubetune.api.finetunejob", "kubetune.api.adapter"} & set(loaded)
    assert "kubetune.api.inferencedeployment" not in loaded


@pytest.mark.parametrize("name", kubetune.api.__all__)
def test_every_exported_name_is_its_module_s_object(name: str) -> None:
    if name == "KINDS":
        return
    home = importlib.import_module(f"kubetune.api.{kubetune.api._HOME[name]}")
    assert getattr(kubetune.api, name) is getattr(home, name)


def test_kinds_are_the_three_kinds_in_crd_order() -> None:
    assert [k.__name__ for k in kubetune.api.KINDS] == [
        "FineTuneJob",
        "Adapter",
        "InferenceDeployment",
    ]


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchModel"):
        _ = kubetune.api.NoSuchModel
    with pytest.raises(ImportError):
        exec("from kubetune.api import NoSuchModel", {})
    assert "FineTuneJob" in dir(kubetune.api)
