import shutil
import sys

import pytest

from localcluster import processes


def test_a_process_that_never_gets_ready_is_stopped(tmp_path, monkeypatch) -> None:
    spawned: list[tuple[int, int]] = []
    spawn = processes.spawn

    def recording_spawn(*args, **kwargs) -> tuple[int, int]:
        spawned.append(spawn(*args, **kwargs))
        return spawned[-1]

    monkeypatch.setattr(processes, "spawn", recording_spawn)
    with pytest.raises(TimeoutError, match="sleeper not ready"):
        processes.start(
            [shutil.which("sleep"), "30"],
            log=tmp_path / "log",
            what="sleeper",
            ready=lambda: False,
            timeout=0.5,
        )
    ((pid, started),) = spawned
    assert not processes.runs(pid, started)


def test_a_process_that_exits_is_reported_with_its_log(tmp_path) -> None:
    argv = [sys.executable, "-c", "print('bad flag'); raise SystemExit(2)"]
    with pytest.raises(RuntimeError, match="bad flag"):
        processes.start(argv, log=tmp_path / "log", what="crasher", ready=lambda: False, timeout=30)


def test_ready_returns_the_running_process(tmp_path) -> None:
    pid, started = processes.start(
        [shutil.which("sleep"), "30"], log=tmp_path / "log", what="s", ready=lambda: True
    )
    try:
        assert processes.runs(pid, started)
    finally:
        processes.stop(pid, started)
    assert not processes.runs(pid, started)
