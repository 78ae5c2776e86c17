"""Bad input: one line naming the cause and the fix, exit code 2, no run folder touched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli


def _study(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def assert_one_line_exit_2(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


def test_malformed_yaml(tmp_path: Path) -> None:
    path = _study(tmp_path, "name: x\nprobe: {tasks: [upos\n")
    assert_one_line_exit_2(
        run_cli("run", str(path), "--runs-dir", str(tmp_path / "runs")), "malformed YAML", "line"
    )
    assert not (tmp_path / "runs").exists()


def test_misspelled_field_value(tmp_path: Path) -> None:
    path = _study(tmp_path, "name: x\ncapture: {pooling: firts}\nprobe: {tasks: [upos]}\n")
    assert_one_line_exit_2(run_cli("run", str(path)), "capture.pooling", "first, mean, last")


def test_unknown_model(tmp_path: Path) -> None:
    path = _study(
        tmp_path, "name: x\nmodels: [no-such-org/no-such-model]\nprobe: {tasks: [upos]}\n"
    )
    assert_one_line_exit_2(
        run_cli("run", str(path), "--runs-dir", str(tmp_path / "runs")),
        "no-such-org/no-such-model",
        "could not be found",
    )
    assert not (tmp_path / "runs").exists()


def test_unknown_task_suggests_the_nearest(tmp_path: Path) -> None:
    path = _study(tmp_path, "name: x\nprobe: {tasks: [upox]}\n")
    assert_one_line_exit_2(run_cli("run", str(path)), "probe.tasks.0", "did you mean 'upos'")


def test_missing_data_names_probe_data_dir(tmp_path: Path) -> None:
    path = _study(tmp_path, "name: x\nprobe: {tasks: [upos]}\n")
    result = run_cli(
        "run",
        str(path),
        env={"PROBE_DATA_DIR": str(tmp_path / "empty"), "PROBE_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert_one_line_exit_2(result, "ud_english_ewt", "PROBE_DATA_DIR")


def test_wrong_file_format(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    assert_one_line_exit_2(run_cli("run", str(path)), str(path))


@pytest.mark.parametrize("args", [["list", "/nonexistent-runs"], ["--help"]])
def test_harmless_commands_exit_zero(args: list[str]) -> None:
    assert run_cli(*args).returncode == 0
