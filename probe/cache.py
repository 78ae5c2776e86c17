"""Activation cache: word features on disk, keyed by what determines them.

A cache entry is a folder ``<root>/features/<key>/`` holding ``features.npy`` (float16, shape
(n_layers, n_words, d_model), opened memory-mapped), ``offsets.npy`` (n_sentences + 1,) and
``meta.json``. The key hashes the model fingerprint (its weights), the dataset file hash and the
exact sentences, the pooling and the layers, so a second study or another task on the same features
never runs the model again, and a retrained model never reads stale features.

Entries are written into a ``.partial`` folder and renamed when complete, so a run killed during
capture leaves no entry that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FeatureCache", "WordFeatures", "default_cache_dir", "sentences_digest"]


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


class FeatureCache:
    """Content-addressed store of :class:`WordFeatures` under ``root``."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    @staticmethod
    def key(**parts: Any) -> str:
        """Stable key of the given parts (JSON-serialisable values)."""
        blob = json.dumps(parts, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:24]

    def _dir(self, key: str) -> Path:
        return self.root / "features" / key

    def get(self, key: str) -> WordFeatures | None:
        """The cached entry, memory-mapped, or None when absent."""
        folder = self._dir(key)
        if not (folder / "meta.json").exists():
            return None
        meta = json.loads((folder / "meta.json").read_text())
        return WordFeatures(
            features=np.load(folder / "features.npy", mmap_mode="r"),
            offsets=np.load(folder / "offsets.npy"),
            layers=tuple(meta["layers"]),
            path=folder,
        )

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
        """Create an entry: ``fill`` writes into a float16 memory map of ``shape``."""
        final = self._dir(key)
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        array = np.lib.format.open_memmap(
            partial / "features.npy", mode="w+", dtype=np.float16, shape=shape
        )
        fill(array)
        array.flush()
        del array
        np.save(partial / "offsets.npy", np.asarray(offsets, dtype=np.int64))
        info = {"layers": list(layers), "shape": list(shape), **(meta or {})}
        (partial / "meta.json").write_text(json.dumps(info, indent=2, default=str))
        if final.exists():  # another process finished the same entry first; keep theirs
            shutil.rmtree(partial)
        else:
            partial.rename(final)
        entry = self.get(key)
        assert entry is not None
        return entry
