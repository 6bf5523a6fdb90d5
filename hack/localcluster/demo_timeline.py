"""The demo's timeline: when each stage began and ended, what it found, progress on the way.

Every event goes two ways: to the terminal (through ``rich``, for people) and as one JSON
line to ``<dir>/events.jsonl`` (for the e2e test, which checks each stage from it, and for
anyone who wants to know afterwards what happened when).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


class StageError(Exception):
    """A stage did not reach its goal; the message says why and where the logs are."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"stage {stage} failed: {message}")
        self.stage = stage


@dataclass
class StageRecord:
    name: str
    title: str
    began: float
    seconds: float | None = None
    ok: bool | None = None


@dataclass
class Timeline:
    """Writes events; ``stage`` brackets one stage of the demo."""

    path: Path
    console: Console = field(default_factory=lambda: Console(highlight=False))
    began: float = field(default_factory=time.monotonic)
    stages: list[StageRecord] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def event(self, stage: str, event: str, **data: Any) -> None:
        """Append one event to the JSON lines log."""
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "elapsed": round(self.elapsed(), 3),
            "stage": stage,
            "event": event,
            **data,
        }
        with self.path.open("a") as log:
            log.write(json.dumps(line) + "\n")

    def say(self, text: str) -> None:
        """A line on the terminal, stamped with the time since the demo began."""
        minutes, seconds = divmod(int(self.elapsed()), 60)
        self.console.print(f"[dim]{minutes:2d}:{seconds:02d}[/dim]  {text}", soft_wrap=True)

    @contextmanager
    def stage(self, name: str, title: str) -> Iterator[Stage]:
        """Run one stage: announce it, time it, record how it ended. An exception inside
        becomes :class:`StageError` (after a ``failed`` event with the error)."""
        record = StageRecord(name, title, self.elapsed())
        self.stages.append(record)
        self.event(name, "start", title=title)
        self.say(f"[bold cyan]▶ {title}[/bold cyan]")
        try:
            yield Stage(self, name)
        except BaseException as exc:
            record.seconds, record.ok = self.elapsed() - record.began, False
            message = str(exc) if isinstance(exc, RuntimeError | OSError) else repr(exc)
            self.event(name, "failed", error=message, seconds=round(record.seconds, 3))
            self.say(f"[bold red]✗ {title}: {escape(message)}[/bold red]")
            if isinstance(exc, Exception) and not isinstance(exc, StageError):
                raise StageError(name, message) from exc
            raise
        record.seconds, record.ok = self.elapsed() - record.began, True
        self.event(name, "done", seconds=round(record.seconds, 3))
        self.say(f"[green]✓ {title}[/green] [dim]({record.seconds:.1f}s)[/dim]")

    def table(self) -> Table:
        """Each stage: when it began (since the start), how long it took, how it ended."""
        table = Table(title="Timeline", title_justify="left", show_edge=False)
        for column in ("stage", "began", "took", ""):
            table.add_column(column, justify="right" if column in ("began", "took") else "left")
        for record in self.stages:
            took = "" if record.seconds is None else f"{record.seconds:.1f}s"
            mark = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "…"}[record.ok]
            table.add_row(record.title, f"+{record.began:.1f}s", took, mark)
        table.add_row("[bold]total[/bold]", "", f"[bold]{self.elapsed():.1f}s[/bold]", "")
        return table


@dataclass
class Stage:
    """The running stage: notes and progress go to the terminal and the event log."""

    timeline: Timeline
    name: str

    def note(self, text: str, **data: Any) -> None:
        """A finding worth a line (``data`` goes to the event log with it)."""
        self.timeline.event(self.name, "info", text=text, **data)
        self.timeline.say(f"   {escape(text)}")

    def progress(self, text: str, **data: Any) -> None:
        """A step of progress (training steps, rollout weights)."""
        self.timeline.event(self.name, "progress", text=text, **data)
        self.timeline.say(f"   [yellow]…[/yellow] {escape(text)}")
