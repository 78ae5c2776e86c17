"""Activation cache: word features on disk, keyed by what determines them.

A cache entry is a folder ``<root>/features/<key>/`` holding ``features.npy`` (float16, shape
(n_layers, n_words, d_model), opened memory-mapped), ``offsets.npy`` (n_sentences + 1,) and
``meta.json``. The key hashes the model fingerprint (its weights), the dataset file hash and the
exact sentences, the pooling and the layers, so a second study or another task on the same features
never runs the model again, and a retrained model never reads stale features.

Trust rules (several runs may share one cache, and anything read back is verified):

- A writer fills a temporary folder of its own (``<key>.partial-<host>-<pid>-<random>``) and
  renames it onto ``<key>`` in one step; the rename fails when the entry exists, so the first
  writer wins and a reader never sees a partial entry. Partial folders of dead processes are
  removed by the next writer.
- ``meta.json`` records the size and CRC-32 of every file; :meth:`FeatureCache.get` checks them
  (and the array headers against the recorded shape) before handing out an entry. A mismatch,
  a missing or unreadable file, or an entry written before checksums existed is reported, moved
  out of the way and treated as absent, so the caller recaptures.
- Before the features are written the whole file is allocated (``posix_fallocate``): a full disk
  is a one-line :class:`~probe.errors.DiskFullError` up front, never a SIGBUS from a memory map
  half way through.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from probe.errors import DiskFullError

__all__ = ["FeatureCache", "WordFeatures", "default_cache_dir", "sentences_digest"]

# meta.json "format": 2 added sizes and checksums; entries without them are recaptured.
_FORMAT = 2
_FILES = ("features.npy", "offsets.npy")
_CHUNK = 16 << 20
# Head room kept free on the cache's disk beyond the entry itself (meta.json, other writers).
_SPARE_BYTES = 64 << 20
# Folders named by _owned_name: a writer's partial entry, or an entry being deleted.
_OWNED = re.compile(r"[0-9a-f]+\.(partial|discard)-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}")


def default_cache_dir() -> Path:
    """``$PROBE_CACHE_DIR`` or ``~/.cache/probe``."""
    return Path(os.environ.get("PROBE_CACHE_DIR") or Path.home() / ".cache" / "probe")


def sentences_digest(sentences: Sequence[Sequence[str]]) -> str:
    """Hash of the exact word sequences (catches subsets, limits and reader changes)."""
    digest = hashlib.sha256()
    for sentence in sentences:
        digest.update("\x1f".join(sentence).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class WordFeatures:
    """Word vectors of a dataset split at several layers.

    Attributes
    ----------
    features : float16 array of shape (n_layers, n_words, d_model), memory-mapped from disk.
    offsets : int64 array of shape (n_sentences + 1,); sentence ``i`` owns rows
        ``offsets[i]:offsets[i+1]``.
    layers : layer index (0 = embeddings) of each row of ``features``.
    """

    features: np.ndarray
    offsets: np.ndarray
    layers: tuple[int, ...]
    path: Path

    @property
    def nbytes(self) -> int:
        return int(self.features.nbytes + self.offsets.nbytes)


class CorruptEntryError(Exception):
    """A cache entry that does not match its own ``meta.json`` (internal to this module)."""


# --------------------------------------------------------------------------- file helpers


def _crc32(f: BinaryIO) -> str:
    # CRC-32 rather than SHA-256: it detects accidental corruption (the threat here; anyone who
    # can write the cache can also write meta.json) at 2.7 GB/s against SHA-256's 0.9 GB/s
    # (measured on this project's 2-core CPU), and a large entry is hashed on every first read.
    crc = 0
    while chunk := f.read(_CHUNK):
        crc = zlib.crc32(chunk, crc)
    return f"{crc:08x}"


def _file_record(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return {"bytes": os.fstat(f.fileno()).st_size, "crc32": _crc32(f)}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _owned_name(folder: Path, tag: str) -> Path:
    """A sibling of ``folder`` no other process uses: ``<name>.<tag>-<host>-<pid>-<random>``."""
    return folder.with_name(
        f"{folder.name}.{tag}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    )


def _remove_tree(folder: Path) -> None:
    """Move ``folder`` aside in one step, then delete it (readers never see it half-deleted)."""
    trash = _owned_name(folder, "discard")
    try:
        folder.rename(trash)
    except FileNotFoundError:
        return  # someone else removed it first
    shutil.rmtree(trash, ignore_errors=True)


def _read_npy_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the .npy file at the start of ``f``."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def _is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


# --------------------------------------------------------------------------- the cache


class FeatureCache:
    """Content-addressed store of :class:`WordFeatures` under ``root``.

    Parameters
    ----------
    root : folder of the cache (default :func:`default_cache_dir`).
    warn : called with a one-line message when an entry is discarded (default: stderr).
    """

    def __init__(
        self, root: str | Path | None = None, *, warn: Callable[[str], None] | None = None
    ) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
        # Entries verified by this process, by (key, inode, size, mtime) of every file: the probe
        # stage reads one entry once per task sharing it, and hashing it once is enough.
        self._verified: set[tuple] = set()

    @staticmethod
    def key(**parts: Any) -> str:
        """Stable key of the given parts (JSON-serialisable values)."""
        blob = json.dumps(parts, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:24]

    def _dir(self, key: str) -> Path:
        return self.root / "features" / key

    # ------------------------------------------------------------------ reading

    def get(self, key: str) -> WordFeatures | None:
        """The cached entry, memory-mapped and verified, or None when absent or discarded."""
        folder = self._dir(key)
        if not folder.exists():
            return None
        try:
            return self._open(folder, key, verify=True)
        except CorruptEntryError as exc:
            self.warn(f"feature cache entry {folder} is damaged ({exc}); discarded, recomputing")
            _remove_tree(folder)
            return None

    def _open(self, folder: Path, key: str, *, verify: bool) -> WordFeatures:
        """Open an entry through one directory handle, so all its files come from one folder."""
        try:
            dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError as exc:
            raise CorruptEntryError("its folder vanished while being opened") from exc
        try:
            return self._open_at(dir_fd, folder, key, verify=verify)
        except CorruptEntryError:
            raise
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            # Missing files, a truncated header, meta.json that is not JSON or lacks a field.
            raise CorruptEntryError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            os.close(dir_fd)

    def _open_at(self, dir_fd: int, folder: Path, key: str, *, verify: bool) -> WordFeatures:
        def open_file(name: str) -> BinaryIO:
            return os.fdopen(os.open(name, os.O_RDONLY, dir_fd=dir_fd), "rb")

        with open_file("meta.json") as f:
            meta = json.loads(f.read().decode("utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise CorruptEntryError("written without checksums by an older version")
        if meta.get("key") != key:
            raise CorruptEntryError(f"meta.json belongs to entry {meta.get('key')!r}")
        shape = tuple(int(n) for n in meta["shape"])
        records = meta["files"]
        handles = {name: open_file(name) for name in _FILES}
        try:
            stats = {name: os.fstat(h.fileno()) for name, h in handles.items()}
            stamp = (key, *((st.st_ino, st.st_size, st.st_mtime_ns) for st in stats.values()))
            for name, st in stats.items():
                if st.st_size != records[name]["bytes"]:
                    raise CorruptEntryError(
                        f"{name} has {st.st_size} bytes, expected {records[name]['bytes']}"
                    )
            if verify and stamp not in self._verified:
                for name, handle in handles.items():
                    crc = _crc32(handle)
                    if crc != records[name]["crc32"]:
                        expected = records[name]["crc32"]
                        raise CorruptEntryError(f"{name} checksum {crc} != {expected}")
                    handle.seek(0)
            header_shape, fortran, dtype = _read_npy_header(handles["features.npy"])
            if header_shape != shape or dtype != np.float16 or fortran:
                raise CorruptEntryError(
                    f"features.npy holds {dtype} {header_shape}, expected {shape}"
                )
            features = np.memmap(
                handles["features.npy"],
                dtype=np.float16,
                mode="r",
                offset=handles["features.npy"].tell(),
                shape=shape,
            )
            offsets = np.lib.format.read_array(handles["offsets.npy"])
        finally:
            for handle in handles.values():
                handle.close()
        if offsets.shape != (len(offsets),) or len(offsets) < 1 or int(offsets[-1]) != shape[1]:
            raise CorruptEntryError(f"offsets end at {offsets[-1:]}, expected {shape[1]} rows")
        self._verified.add(stamp)
        return WordFeatures(
            features=features,
            offsets=offsets.astype(np.int64, copy=False),
            layers=tuple(meta["layers"]),
            path=folder,
        )

    # ------------------------------------------------------------------ writing

    def put(
        self,
        key: str,
        *,
        shape: tuple[int, int, int],
        offsets: np.ndarray,
        layers: Sequence[int],
        fill: Callable[[np.ndarray], None],
        meta: dict[str, Any] | None = None,
    ) -> WordFeatures:
        """Create an entry: ``fill`` writes into a float16 memory map of ``shape``.

        When another process stored the same key meanwhile, its (verified) entry is returned and
        this one is dropped.

        Raises
        ------
        DiskFullError
            The cache's disk cannot hold the entry (checked before ``fill`` runs).
        """
        final = self._dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        self._remove_dead_partials()
        partial = _owned_name(final, "partial")
        partial.mkdir()
        try:
            self._write(partial, key, shape, offsets, layers, fill, meta or {})
            for _ in range(3):
                try:
                    partial.rename(final)  # atomic; fails when the entry exists
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                else:
                    return self._open(final, key, verify=False)  # just written and hashed
                theirs = self.get(key)  # another writer won: use theirs if it is sound
                if theirs is not None:
                    return theirs
            raise RuntimeError(f"could not store feature cache entry {final}")
        except OSError as exc:
            if _is_disk_full(exc):
                raise DiskFullError(
                    f"no space left on the device of the feature cache {self.root} while writing "
                    f"{key}; free space or point PROBE_CACHE_DIR at a bigger disk"
                ) from None
            raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def _write(
        self,
        partial: Path,
        key: str,
        shape: tuple[int, int, int],
        offsets: np.ndarray,
        layers: Sequence[int],
        fill: Callable[[np.ndarray], None],
        meta: dict[str, Any],
    ) -> None:
        needed = int(np.prod(shape)) * 2 + (len(offsets) + 16) * 8 + _SPARE_BYTES
        free = shutil.disk_usage(partial).free
        if free < needed:
            raise DiskFullError(
                f"the feature cache {self.root} needs {needed / 2**20:.0f} MiB for this entry but "
                f"its disk has {free / 2**20:.0f} MiB free; free space or point PROBE_CACHE_DIR "
                "at a bigger disk"
            )
        array = np.lib.format.open_memmap(
            partial / "features.npy", mode="w+", dtype=np.float16, shape=shape
        )
        # Allocate every block now: a memory map over a sparse file dies with SIGBUS when the
        # disk fills during `fill`; posix_fallocate fails here with ENOSPC instead.
        with open(partial / "features.npy", "r+b") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise  # ENOSPC above all; a filesystem without fallocate keeps the check
        fill(array)
        array.flush()
        del array
        np.save(partial / "offsets.npy", np.asarray(offsets, dtype=np.int64))
        info = {
            "format": _FORMAT,
            "key": key,
            "layers": list(layers),
            "shape": list(shape),
            "files": {name: _file_record(partial / name) for name in _FILES},
            **meta,
        }
        (partial / "meta.json").write_text(json.dumps(info, indent=2, default=str))

    def _remove_dead_partials(self) -> None:
        """Delete partial and discarded folders left by dead processes of this host."""
        host = socket.gethostname()
        for folder in (self.root / "features").iterdir():
            match = _OWNED.fullmatch(folder.name)
            if match and match["host"] == host and not _pid_alive(int(match["pid"])):
                with contextlib.suppress(OSError):
                    shutil.rmtree(folder)
