"""The model and the LoRA adapters attached to it, addressed by slot.

PEFT keeps several adapters in one ``PeftModel`` and can apply a different one to each row of
a forward pass (``adapter_names=[...]``, its mixed-batch inference). The runtime relies on
that, and never on PEFT's *active adapter*: every forward names its adapter explicitly
(``"__base__"`` for the base model), so the active-adapter setting — process-wide state that
two requests would race on — has no effect on any output.

Adapters live in slots (``slot0``, ``slot1``, … named by the registry), never under their
version names: those may contain dots, which PEFT's module dictionaries cannot hold, and a
version whose source changed can load into a new slot while the old one still serves.

Nothing here is thread-safe: PEFT injects layers into the model and registers forward hooks
for each call, so only the engine thread (:mod:`kubetune_server.engine`) may use this object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubetune.api import Reason
from kubetune_server.errors import AdapterRefusedError

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch


@dataclass(frozen=True)
class AttachResult:
    """A loaded slot."""

    slot: str
    rank: int
    parameters: int


class AdapterSlots:
    """Owns the model: the bare base model until the first adapter, a PeftModel after."""

    def __init__(self, model: Any) -> None:
        self.model = model.eval()
        self._peft = False

    @property
    def slots(self) -> list[str]:
        """Slots holding an adapter now."""
        return list(self.model.peft_config) if self._peft else []

    def forward_kwargs(self, slot: str | None) -> dict[str, Any]:
        """Keyword arguments that select ``slot`` (None: the base model) for one forward pass
        of a single sequence."""
        if not self._peft:
            if slot is not None:
                raise KeyError(f"adapter slot {slot} is not loaded")
            return {}
        if slot is not None and slot not in self.model.peft_config:
            raise KeyError(f"adapter slot {slot} is not loaded")
        return {"adapter_names": [slot or BASE_ADAPTER]}

    def attach(self, slot: str, directory: Path) -> AttachResult:
        """Load the PEFT adapter saved in ``directory`` into ``slot``. AdapterRefusedError if it
        does not fit the model (wrong shapes, unknown modules, missing or unexpected weights)."""
        from peft import PeftConfig, PeftModel

        try:
            config = PeftConfig.from_pretrained(str(directory))
            config.inference_mode = True
            if not self._peft:
                self.model = PeftModel(self.model, config, adapter_name=slot).eval()
                self._peft = True
            result = self.model.load_adapter(str(directory), adapter_name=slot)
        except (RuntimeError, ValueError, KeyError, OSError) as exc:
            self._discard(slot)
            raise AdapterRefusedError(
                Reason.BASE_MODEL_MISMATCH, f"the adapter does not fit the base model: {exc}"
            ) from exc
        missing = list(result.missing_keys)
        unexpected = list(result.unexpected_keys)
        if missing or unexpected:
            self._discard(slot)
            keys = ", ".join((missing + unexpected)[:3])
            raise AdapterRefusedError(
                Reason.BASE_MODEL_MISMATCH,
                f"the adapter's weights do not match the model's modules ({keys}, ...)",
            )
        self.model.eval()
        parameters = sum(
            p.numel() for name, p in self.model.named_parameters() if f".{slot}." in name
        )
        return AttachResult(slot, int(getattr(config, "r", 0)), parameters)

    def detach(self, slot: str) -> None:
        """Remove ``slot``'s layers and weights; the model is the bare base model after the last."""
        if not self._peft or slot not in self.model.peft_config:
            return
        self._discard(slot)

    def _discard(self, slot: str) -> None:
        if not self._peft or slot not in self.model.peft_config:
            return
        others = [s for s in self.model.peft_config if s != slot]
        if not others:
            # PEFT cannot hold zero adapters (its active adapter would dangle): unwrap instead.
            self.model = self.model.unload().eval()
            self._peft = False
            return
        if slot in self.model.active_adapters:
            self.model.set_adapter(others[0])  # irrelevant to outputs; avoids a dangling name
        self.model.delete_adapter(slot)
