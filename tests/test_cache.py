"""Feature cache: concurrent writers never corrupt each other; what is read back is verified."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from probe import cache as cache_module
from probe.cache import FeatureCache
from probe.errors import DiskFullError
from tests.conftest import REPO

SHAPE = (3, 40, 8)
OFFSETS = np.array([0, 10, 25, 40])


def expected_values(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float16)


def put(cache: FeatureCache, key: str = "k", seed: int = 0):
    values = expected_values(seed)

    def fill(out: np.ndarray) -> None:
        out[:] = values

    return cache.put(key, shape=SHAPE, offsets=OFFSETS, layers=[0, 1, 2], fill=fill)


# A writer that fills its entry slowly, word by word, after a common start signal, then checks
# that what it got back equals what it meant to store.
_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from probe.cache import FeatureCache

    root, go = Path(sys.argv[1]), Path(sys.argv[2])
    values = np.random.default_rng(0).standard_normal((3, 40, 8)).astype(np.float16)
    while not go.exists():
        time.sleep(0.001)

    def fill(out):
        for word in range(values.shape[1]):
            out[:, word] = values[:, word]
            time.sleep(0.004)

    entry = FeatureCache(root).put(
        "k", shape=values.shape, offsets=np.array([0, 10, 25, 40]), layers=[0, 1, 2], fill=fill
    )
    assert np.array_equal(np.asarray(entry.features), values), "entry differs from what was put"
    print("ok")
    """
)


def test_two_processes_writing_one_entry_both_get_correct_features(tmp_path: Path) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path / "cache"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    time.sleep(2.0)  # both interpreters started and waiting
    go.touch()
    # Meanwhile a reader must never see a partial entry: absent, or complete and correct.
    reader, seen = FeatureCache(tmp_path / "cache"), 0
    while any(w.poll() is None for w in writers):
        entry = reader.get("k")
        if entry is not None:
            assert np.array_equal(np.asarray(entry.features), expected_values())
            seen += 1
    results = [w.communicate() for w in writers]
    for writer, (out, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0 and out.strip() == "ok", err
    entry = FeatureCache(tmp_path / "cache").get("k")
    assert entry is not None and np.array_equal(np.asarray(entry.features), expected_values())
    assert os.listdir(tmp_path / "cache" / "features") == ["k"]  # no partial folder left


def _zero(folder: Path) -> None:
    path = folder / "features.npy"
    header = 128  # numpy's v1 header of a small array
    data = bytearray(path.read_bytes())
    data[header:] = bytes(len(data) - header)
    path.write_bytes(bytes(data))


def _flip_one_bit(folder: Path) -> None:
    path = folder / "features.npy"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _truncate(folder: Path) -> None:
    path = folder / "features.npy"
    path.write_bytes(path.read_bytes()[:-100])


def _old_format(folder: Path) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    del meta["files"], meta["format"]
    (folder / "meta.json").write_text(json.dumps(meta))


def _other_entry(folder: Path) -> None:
    # Files of another entry (another split) of the same size copied over this one.
    other = FeatureCache(folder.parent.parent)
    put(other, key="other", seed=1)
    for name in ("features.npy", "offsets.npy"):
        shutil.copy(folder.parent / "other" / name, folder / name)


CORRUPTIONS = {
    "zeroed features": _zero,
    "one flipped bit": _flip_one_bit,
    "truncated features": _truncate,
    "deleted features": lambda f: (f / "features.npy").unlink(),
    "deleted offsets": lambda f: (f / "offsets.npy").unlink(),
    "deleted meta": lambda f: (f / "meta.json").unlink(),
    "broken meta": lambda f: (f / "meta.json").write_text("{not json"),
    "meta of another key": lambda f: (f / "meta.json").write_text(
        (f / "meta.json").read_text().replace('"key": "k"', '"key": "x"')
    ),
    "written without checksums": _old_format,
    "another entry's files": _other_entry,
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS))
def test_damaged_entry_is_discarded_with_a_warning_and_recomputed(
    tmp_path: Path, corrupt: str
) -> None:
    put(FeatureCache(tmp_path))
    CORRUPTIONS[corrupt](tmp_path / "features" / "k")
    warnings: list[str] = []
    cache = FeatureCache(tmp_path, warn=warnings.append)
    assert cache.get("k") is None
    assert len(warnings) == 1 and "damaged" in warnings[0] and "recomputing" in warnings[0]
    assert not (tmp_path / "features" / "k").exists()
    entry = put(cache)  # the next run recaptures, and then reads its own entry back
    assert np.array_equal(np.asarray(entry.features), expected_values())
    assert np.array_equal(np.asarray(FeatureCache(tmp_path).get("k").features), expected_values())


def test_entry_read_back_is_the_entry_written(tmp_path: Path) -> None:
    put(FeatureCache(tmp_path))
    entry = FeatureCache(tmp_path).get("k")
    assert entry.layers == (0, 1, 2)
    assert np.array_equal(entry.offsets, OFFSETS)
    assert np.array_equal(np.asarray(entry.features), expected_values())


def test_full_disk_is_reported_before_capture_starts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(
        cache_module.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 1000)
    )
    filled = []
    with pytest.raises(DiskFullError, match="PROBE_CACHE_DIR"):
        FeatureCache(tmp_path).put(
            "k", shape=SHAPE, offsets=OFFSETS, layers=[0, 1, 2], fill=filled.append
        )
    assert filled == []  # no model work was done for an entry that cannot be stored
    assert os.listdir(tmp_path / "features") == []


def test_disk_filling_up_during_allocation_is_one_error_not_a_bus_error(
    tmp_path: Path, monkeypatch
) -> None:
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module.os, "posix_fallocate", no_space)
    with pytest.raises(DiskFullError, match="no space left"):
        put(FeatureCache(tmp_path))
    assert os.listdir(tmp_path / "features") == []


def test_partial_folder_of_a_dead_writer_is_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    host = cache_module.socket.gethostname()
    stale = tmp_path / "features" / f"abc.partial-{host}-{dead.stdout.strip()}-0123abcd"
    stale.mkdir(parents=True)
    mine = tmp_path / "features" / f"abd.partial-{host}-{os.getpid()}-0123abcd"
    mine.mkdir()
    put(FeatureCache(tmp_path))
    assert not stale.exists()
    assert mine.exists()  # a live process's partial write is left alone
