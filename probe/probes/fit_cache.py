"""Fitted-probe cache: what a probe learned, on disk, keyed by everything that determines it.

Rerunning a study, or adding one task or one seed to it, should fit only what is new. An entry is
a folder ``<root>/probes/<key>/`` holding ``arrays.npz`` (the fitted arrays, uncompressed) and
``meta.json``; the key hashes the feature cache keys of the splits the probe reads, the targets
and span settings that turn features into probe inputs, the labels (a control task's labels
carry its seed), the estimator's settings and a fit version. A setting that changes a probe
changes its key, so exactly that entry is refitted; entries are never edited.

Trust rules, as for the feature cache (:mod:`probe.cache`, whose helpers this reuses):

- A writer fills a folder of its own and renames it onto ``<key>`` in one step; the first writer
  wins and a reader never sees a partial entry.
- ``meta.json`` records the size and CRC-32 of ``arrays.npz`` and the name, shape and dtype of
  every array. :meth:`ProbeCache.load` checks all of them before returning anything; a mismatch
  (or an unreadable entry) is reported, moved aside and treated as absent, so the caller refits.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from probe.cache import (
    FeatureCache,
    _crc32,
    _file_record,
    _is_disk_full,
    _owned_name,
    _remove_tree,
)
from probe.errors import DiskFullError

__all__ = ["ProbeCache", "array_digest"]

# meta.json "format"; bump when the layout of an entry changes.
_FORMAT = 1
_ARRAYS = "arrays.npz"


def array_digest(*arrays: np.ndarray) -> str:
    """Hash of the exact contents, dtypes and shapes of ``arrays`` (labels, targets)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data)
    return digest.hexdigest()[:16]


class CorruptProbeEntryError(Exception):
    """An entry that does not match its own ``meta.json`` (internal to this module)."""


class ProbeCache:
    """Content-addressed store of fitted probe arrays under ``<root>/probes``.

    Parameters
    ----------
    root : the cache folder (the feature cache's root, :func:`probe.cache.default_cache_dir`).
    warn : called with a one-line message when an entry is discarded (default: stderr).

    Attributes
    ----------
    reused, stored : keys of the entries this instance read back and wrote (for the report).
    """

    def __init__(
        self, root: str | Path | None = None, *, warn: Callable[[str], None] | None = None
    ) -> None:
        self.root = Path(root) if root is not None else FeatureCache().root
        self.warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
        self.reused: list[str] = []
        self.stored: list[str] = []

    key = staticmethod(FeatureCache.key)

    def _dir(self, key: str) -> Path:
        return self.root / "probes" / key

    # ------------------------------------------------------------------ reading

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The verified arrays of entry ``key``, or None when absent or discarded."""
        folder = self._dir(key)
        if not folder.exists():
            return None
        try:
            arrays = self._read(folder, key)
        except CorruptProbeEntryError as exc:
            self.warn(f"probe cache entry {folder} is damaged ({exc}); discarded, refitting")
            _remove_tree(folder)
            return None
        self.reused.append(key)
        return arrays

    @staticmethod
    def _read(folder: Path, key: str) -> dict[str, np.ndarray]:
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
                raise CorruptProbeEntryError(f"format {meta.get('format')!r}, expected {_FORMAT}")
            if meta.get("key") != key:
                raise CorruptProbeEntryError(f"meta.json belongs to entry {meta.get('key')!r}")
            record = meta["files"][_ARRAYS]
            with open(folder / _ARRAYS, "rb") as f:
                size = f.seek(0, 2)
                if size != record["bytes"]:
                    raise CorruptProbeEntryError(
                        f"{_ARRAYS} has {size} bytes, expected {record['bytes']}"
                    )
                f.seek(0)
                crc = _crc32(f)
                if crc != record["crc32"]:
                    raise CorruptProbeEntryError(f"{_ARRAYS} checksum {crc} != {record['crc32']}")
                f.seek(0)
                with np.load(f, allow_pickle=False) as npz:
                    arrays = {name: npz[name] for name in npz.files}
            expected = {
                name: (tuple(shape), dtype) for name, (shape, dtype) in meta["arrays"].items()
            }
            found = {name: (a.shape, a.dtype.str) for name, a in arrays.items()}
            if found != expected:
                raise CorruptProbeEntryError(f"arrays {found} do not match meta.json {expected}")
        except CorruptProbeEntryError:
            raise
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            raise CorruptProbeEntryError(f"{type(exc).__name__}: {exc}") from exc
        return arrays

    # ------------------------------------------------------------------ writing

    def store(
        self, key: str, arrays: Mapping[str, np.ndarray], describe: Mapping[str, Any] | None = None
    ) -> None:
        """Write entry ``key`` (``describe``: what it is, kept in meta.json for people)."""
        final = self._dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = _owned_name(final, "partial")
        partial.mkdir()
        try:
            arrays = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
            np.savez(partial / _ARRAYS, **arrays)
            meta = {
                "format": _FORMAT,
                "key": key,
                "files": {_ARRAYS: _file_record(partial / _ARRAYS)},
                "arrays": {name: [list(a.shape), a.dtype.str] for name, a in arrays.items()},
                **(describe or {}),
            }
            (partial / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
            try:
                partial.rename(final)  # atomic; fails when another writer stored it first
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
            self.stored.append(key)
        except OSError as exc:
            if _is_disk_full(exc):
                raise DiskFullError(
                    f"no space left on the device of the probe cache {self.root} while writing "
                    f"{key}; free space or point PROBE_CACHE_DIR at a bigger disk"
                ) from None
            raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
