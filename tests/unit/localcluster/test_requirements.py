import importlib.util
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[3] / "hack" / "lib" / "requirements.py"
_spec = importlib.util.spec_from_file_location("requirements_script", _SCRIPT)
requirements_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(requirements_script)

PYPROJECT = {
    "project": {
        "name": "kubetune",
        "dependencies": ["a==1"],
        "optional-dependencies": {
            "trainer": ["torch==2", "b==1"],
            "server": ["torch==2", "c==1"],
            "dev": ["kubetune[trainer,server]", "pytest==9"],
        },
    }
}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("trainer", {"a==1", "torch==2", "b==1"}),
        ("dev", {"a==1", "torch==2", "b==1", "c==1", "pytest==9"}),
        ("unknown", {"a==1"}),
    ],
)
def test_extras_resolve_their_self_references(extra: str, expected: set[str]) -> None:
    assert requirements_script.requirements(PYPROJECT, extra) == expected
