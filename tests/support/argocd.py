"""Run the Argo CD scripts of helm/kubetune/files/argocd-cm.yaml as Argo CD does.

Argo CD evaluates health and action scripts with gopher-lua, a Lua 5.1 interpreter: the
object is the global ``obj`` and the chunk's return value is the result. lupa's Lua 5.1
runtime, stripped of what Argo CD's sandbox lacks, stands in for it; each script runs in a
fresh runtime, so nothing leaks from one call to the next.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import yaml

ARGOCD_CM = Path(__file__).resolve().parents[2] / "helm" / "kubetune" / "files" / "argocd-cm.yaml"
HEALTH_KEY = "resource.customizations.health.kubetune.io_{kind}"
ACTIONS_KEY = "resource.customizations.actions.kubetune.io_{kind}"
# Removed from the runtime: libraries Argo CD's sandbox does not open (io, os), loaders of
# code from files, and lupa's bridge to Python. The scripts must need none of them.
_UNAVAILABLE = ("io", "os", "dofile", "loadfile", "python")


def argocd_cm() -> dict[str, str]:
    """The ``data`` of the shipped argocd-cm snippet."""
    return yaml.safe_load(ARGOCD_CM.read_text())["data"]


def _to_lua(runtime: Any, value: Any) -> Any:
    """A JSON-like Python value as Lua values (arrays 1-based, as gopher-lua decodes JSON)."""
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def _from_lua(value: Any) -> Any:
    """Lua tables back as dicts, or lists when their keys are 1..n."""
    if lua51.lua_type(value) != "table":
        return value
    items = dict(value.items())
    if items and list(items) == list(range(1, len(items) + 1)):
        return [_from_lua(v) for v in items.values()]
    return {k: _from_lua(v) for k, v in items.items()}


def run_script(script: str, obj: dict[str, Any]) -> Any:
    """Evaluate ``script`` with ``obj`` as Argo CD would; its return value as Python."""
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    lua_globals = runtime.globals()
    for name in _UNAVAILABLE:
        lua_globals[name] = None
    lua_globals.obj = _to_lua(runtime, obj)
    return _from_lua(runtime.execute(script))


def _actions(kind: str) -> dict[str, Any]:
    """The discovery script and definitions of ``kind``'s actions."""
    return yaml.safe_load(argocd_cm()[ACTIONS_KEY.format(kind=kind)])


def health(obj: dict[str, Any]) -> dict[str, str]:
    """What the health script of the object's kind says about it."""
    return run_script(argocd_cm()[HEALTH_KEY.format(kind=obj["kind"])], obj)


def discover(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The actions Argo CD offers for the object: name -> disabled, iconClass, displayName."""
    return run_script(_actions(obj["kind"])["discovery.lua"], obj)


def action_names(kind: str) -> list[str]:
    """The actions ``kind`` defines."""
    return [d["name"] for d in _actions(kind)["definitions"]]


def act(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The object the named action returns, which Argo CD then patches the live one to."""
    (definition,) = [d for d in _actions(obj["kind"])["definitions"] if d["name"] == name]
    return run_script(definition["action.lua"], obj)
