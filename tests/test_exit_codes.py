"""`probe run` ends with an honest exit status and one line: 0 complete, 130 interrupted, 2 bad
input, 1 anything else; a run folder is worked on by one process at a time; a full disk still
gets the run marked failed.

Runs go through the real entry point (:func:`probe.cli.run_command`) with the stage replaced by
a stand-in that sleeps, fails or returns; signals and the lock are tested across real processes.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from probe.errors import StudyError
from probe.study import load_study
from tests.conftest import REPO

# Runs `probe run ARGS` through the real entry point with the probe stage replaced by BEHAVIOUR.
_DRIVER = textwrap.dedent(
    """
    import sys, time
    import probe.runner
    from probe.errors import StudyError
    from probe.study import load_study

    behaviour = sys.argv[1]

    def stage(ctx):
        print("stage started", flush=True)
        if behaviour == "sleep":
            time.sleep(120)
        elif behaviour == "crash":
            raise RuntimeError("boom")
        elif behaviour == "bad input":
            raise StudyError("probe.tasks.0: found late")

    probe.runner.load_function = lambda target: stage
    probe.runner.validate_study = load_study  # no data to read: only the exit matters
    from probe.cli import main

    sys.argv = ["probe", "run", *sys.argv[2:]]
    main()
    """
)


@pytest.fixture
def study(tiny_model_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "exit_codes",
                "models": [{"spec": str(tiny_model_dir), "name": "tiny"}],
                "probe": {"tasks": ["upos"], "limit": {"train": 20, "dev": 10, "test": 10}},
                "figures": ["html"],
            }
        )
    )
    return path


def _start(behaviour: str, study: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _DRIVER, behaviour, str(study), "--runs-dir",
         str(study.parent / "runs"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip


def _wait_for_stage(process: subprocess.Popen) -> None:
    line = process.stdout.readline()
    while line and "stage started" not in line:
        line = process.stdout.readline()
    assert line, process.stderr.read()


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def _manifest(study: Path) -> dict:
    (path,) = (study.parent / "runs").glob("*/*/manifest.json")
    return json.loads(path.read_text())


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_working_run_holds_its_folder_and_ctrl_c_exits_130(
    study: Path, capsys: pytest.CaptureFixture
) -> None:
    from probe.cli import run_command

    first = _start("sleep", study)
    try:
        _wait_for_stage(first)
        # A second `--resume` finds the same unfinished folder and must not work in it too.
        status = run_command(["run", str(study), "--runs-dir", str(study.parent / "runs"),
                              "--resume"])  # fmt: skip
        line = _one_line(capsys.readouterr().err)
        assert status == 2, line
        assert f"is in use by process {first.pid} on " in line and "wait for it" in line
    finally:
        first.send_signal(signal.SIGINT)
    status, err = _finish(first)
    assert status == 130
    line = _one_line(err)
    assert line.startswith("interrupted;") and "--resume" in line
    assert _manifest(study)["status"] == "interrupted"


@pytest.mark.parametrize(
    ("behaviour", "status", "needle", "manifest"),
    [
        ("return", 0, None, "complete"),
        ("bad input", 2, "error: probe.tasks.0: found late", "failed"),
        ("crash", 1, "error: RuntimeError: boom", "failed"),
        ("sigterm", 130, "interrupted;", "interrupted"),
    ],
)
def test_exit_status_says_how_the_run_ended(
    study: Path,
    behaviour: str,
    status: int,
    needle: str | None,
    manifest: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    import probe.runner
    from probe.cli import run_command

    def stage(ctx) -> None:
        if behaviour == "bad input":
            raise StudyError("probe.tasks.0: found late")
        if behaviour == "crash":
            raise RuntimeError("boom")
        if behaviour == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the handler interrupts this

    monkeypatch.setattr(probe.runner, "load_function", lambda target: stage)
    monkeypatch.setattr(probe.runner, "validate_study", load_study)
    got = run_command(["run", str(study), "--runs-dir", str(study.parent / "runs")])
    err = capsys.readouterr().err
    assert got == status, err
    if needle is not None:
        line = _one_line(err)
        assert line.startswith(needle)
        assert ("is marked failed" in line) == (manifest == "failed")
    else:
        assert err == ""
    assert _manifest(study)["status"] == manifest
    if behaviour == "crash":
        (traceback,) = (study.parent / "runs").glob("*/*/logs/traceback.txt")
        assert "RuntimeError: boom" in traceback.read_text()


def test_full_disk_still_marks_the_run_failed(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from probe.rundir import RunContext, create_run_dir
    from probe.study import parse_study

    study = parse_study({"name": "full_disk", "models": [str(tiny_model_dir)]})
    run_dir = create_run_dir(study, tmp_path)
    ctx = RunContext(study=study, run_dir=run_dir, device=torch.device("cpu"), cache=None)
    ctx.start()
    assert (ctx.run_dir / ".space-reserve").stat().st_size > 0
    write_text = Path.write_text

    def full_disk(path: Path, text: str, *args, **kwargs):
        # The disk is full until the run gives back its reserve.
        if (ctx.run_dir / ".space-reserve").exists():
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write_text(path, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    ctx.finish("failed")
    monkeypatch.undo()
    assert json.loads((ctx.run_dir / "manifest.json").read_text())["status"] == "failed"
    assert not (ctx.run_dir / ".space-reserve").exists()
