"""Fitted-probe cache: warm reruns reuse every fit, one changed setting refits exactly its entries,
and a damaged entry is detected and refitted, never used."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console

from probe.probes.fit_cache import ProbeCache
from probe.runner import run_study


def _write_study(folder: Path, model_dir: Path, **probe) -> Path:
    study = {
        "name": "tiny_cache",
        "seed": 0,
        "models": [{"spec": str(model_dir), "name": "tiny"}],
        "probe": {
            "tasks": ["upos"],
            "limit": {"train": 60, "dev": 20, "test": 20},
            "C": [0.1, 1.0],
            "bootstrap": 20,
            "mix": True,
            **probe,
        },
        "figures": [],
    }
    path = folder / "tiny_cache.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _run(path: Path, runs: Path) -> tuple[Path, str]:
    buffer = io.StringIO()
    run_dir = run_study(path, runs_dir=runs, console=Console(file=buffer, width=200))
    return run_dir, buffer.getvalue()


def _counts(log: str) -> tuple[int, int]:
    """(reused, fitted) from the run's probe cache line."""
    match = re.search(r"probe cache: (\d+) fit\(s\) reused, (\d+) fitted", log)
    assert match, log
    return int(match[1]), int(match[2])


def _tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    return {
        name: pd.read_parquet(run_dir / "results" / f"{name}.parquet")
        for name in ("probe", "probe_summary")
    }


@pytest.fixture(scope="module")
def cold(tiny_model_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A cold run with a cache folder of its own (features and probes)."""
    tmp = tmp_path_factory.mktemp("probe_cache")
    saved = os.environ["PROBE_CACHE_DIR"]
    os.environ["PROBE_CACHE_DIR"] = str(tmp / "cache")
    try:
        path = _write_study(tmp, tiny_model_dir)
        run_dir, log = _run(path, tmp / "runs")
        yield tmp, path, run_dir, log
    finally:
        os.environ["PROBE_CACHE_DIR"] = saved


def test_warm_rerun_reuses_every_fit_and_gives_identical_tables(cold) -> None:
    tmp, path, run_dir, log = cold
    assert _counts(log) == (0, 3)  # task probe, control (seed 0), layer summaries (seed 0)
    warm_dir, warm_log = _run(path, tmp / "runs")
    assert _counts(warm_log) == (3, 0)
    assert "upos probe: reused from the probe cache" in warm_log
    assert "fitted 4 (layer, C) pairs" not in warm_log
    for name, table in _tables(run_dir).items():
        pd.testing.assert_frame_equal(_tables(warm_dir)[name], table, obj=name)


def test_a_new_seed_or_a_mix_setting_refits_exactly_the_entries_it_changes(cold) -> None:
    tmp, path, run_dir, _ = cold
    study = yaml.safe_load(path.read_text())
    study["probe"]["seeds"] = [0, 1]
    path.write_text(yaml.safe_dump(study))
    two_seeds, log = _run(path, tmp / "runs")
    # reused: task probe, control and summaries of seed 0; fitted: control and summaries of seed 1
    assert _counts(log) == (3, 2)
    assert "upos control (seed 1): fitted" in log
    seed0 = _tables(two_seeds)["probe"].query("seed == 0").reset_index(drop=True)
    pd.testing.assert_frame_equal(seed0, _tables(run_dir)["probe"])

    study["probe"]["mix_max_train"] = 500  # subsample the mix probes' training words
    path.write_text(yaml.safe_dump(study))
    _, log = _run(path, tmp / "runs")
    assert _counts(log) == (3, 2)  # the linear probes are reused; both seeds' summaries refitted
    assert "layer summaries (seed 0): reused" not in log


def test_a_damaged_entry_is_detected_and_refitted_never_used(cold) -> None:
    tmp, path, run_dir, _ = cold
    study = yaml.safe_load(path.read_text())
    study["probe"].pop("seeds", None)
    study["probe"].pop("mix_max_train", None)
    path.write_text(yaml.safe_dump(study))
    entries = sorted((tmp / "cache" / "probes").glob("*/arrays.npz"))
    assert len(entries) == 7  # 3 + 2 + 2 fits of the runs above
    for arrays in entries:  # flip one byte in the middle of every entry
        data = bytearray(arrays.read_bytes())
        data[len(data) // 2] ^= 0xFF
        arrays.write_bytes(bytes(data))
    again, log = _run(path, tmp / "runs")
    assert "is damaged" in log and "checksum" in log
    assert _counts(log) == (0, 3)
    for name, table in _tables(run_dir).items():
        pd.testing.assert_frame_equal(_tables(again)[name], table, obj=name)


def test_store_and_load_round_trip_and_a_wrong_size_is_refused(tmp_path: Path) -> None:
    warnings: list[str] = []
    cache = ProbeCache(tmp_path, warn=warnings.append)
    arrays = {"coef_": np.arange(12, dtype=np.float32).reshape(3, 4), "C_": np.array([0.1, 1.0])}
    cache.store("k", arrays)
    loaded = cache.load("k")
    assert loaded is not None and set(loaded) == set(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(loaded[name], value)
        assert loaded[name].dtype == value.dtype
    with open(tmp_path / "probes" / "k" / "arrays.npz", "ab") as f:
        f.write(b"x")  # a truncated or appended file: the size check fails before any parsing
    assert cache.load("k") is None
    assert "bytes, expected" in warnings[0]
    assert not (tmp_path / "probes" / "k").exists()  # moved aside: the next run refits
