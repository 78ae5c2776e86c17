"""Wall time of the whole probing pipeline, cold and warm, against a bare forward pass.

The question (issue 20): how long does ``probe run studies/pipeline.yaml`` take from empty caches
(cold: every sentence captured, every probe fitted) and when rerun unchanged (warm: features and
fitted probes read back from the caches), where does that time go, and how far is cold from the
floor: one bare forward pass of every model over the same sentences?

Each run is a separate ``probe run`` process (so the wall time includes start-up, model loading,
figures) on a fresh cache folder (``PROBE_CACHE_DIR``) shared by the cold and the warm run. The
breakdown comes from each run's manifest (:mod:`probe.timing`). The floor tokenizes and runs each
model over every distinct split the study's tasks read (UD EWT once for upos and deprel), in
probe's length-bucketed batches with all hidden states returned, storing nothing (no hooks, no
pooling, no cache writes). Finally the
cold and warm result tables are compared (they must be identical).

Usage::

    python benchmarks/bench_pipeline.py                      # the shipped studies/pipeline.yaml
    python benchmarks/bench_pipeline.py --reduced            # MiniLM only, 200/100/100
                                                             # sentences, one seed, bootstrap 100
    python benchmarks/bench_pipeline.py --set probe.seeds=[0] --runs-dir /tmp/runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from rich.console import Console
from rich.table import Table

from probe.capture import _special_ids, plan_batches, tokenize_words
from probe.data import load_probe_task
from probe.models import load_encoder
from probe.study import load_study
from probe.timing import breakdown

REPO = Path(__file__).resolve().parents[1]

#: The documented fraction of the shipped study (``--reduced``): the one the README's "before"
#: breakdown was measured on, with one model.
REDUCED = (
    'models=[{spec: "embedded:minilm", name: minilm}]',
    "probe.limit={train: 200, dev: 100, test: 100}",
    "probe.seeds=[0]",
    "probe.bootstrap=100",
)


def run_study(study: Path, overrides: list[str], runs_dir: Path, cache: Path) -> tuple[float, Path]:
    """Wall seconds of one ``probe run`` process, and its run folder."""
    command = [sys.executable, "-m", "probe", "run", str(study), "--runs-dir", str(runs_dir)]
    for override in overrides:
        command += ["--set", override]
    env = {**os.environ, "PROBE_CACHE_DIR": str(cache)}
    before = set(runs_dir.glob("*/*"))
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=REPO)
    seconds = time.perf_counter() - start
    (run_dir,) = set(runs_dir.glob("*/*")) - before
    return seconds, run_dir


def forward_floor(study_path: Path, overrides: list[str]) -> tuple[float, int, int]:
    """Seconds of bare forward passes of every model over every distinct split; sentences per
    model; models."""
    study = load_study(study_path, overrides)
    section = study.probe
    splits: dict[tuple, list] = {}
    for task in section.tasks:
        data = load_probe_task(task, limit=dict(section.limit) or None, seed=study.seed)
        for split in data.splits.values():
            splits.setdefault((str(split.source), len(split.sentences)), split.sentences)
    seconds, n_sentences = 0.0, sum(len(s) for s in splits.values())
    for entry in study.models:
        encoder = load_encoder(entry.spec, seed=study.seed, device="cpu")
        model, tokenizer = encoder.model, encoder.tokenizer
        prefix, suffix = _special_ids(tokenizer)
        for sentences in splits.values():
            start = time.perf_counter()
            plan = plan_batches(
                tokenize_words(tokenizer, sentences),
                max_tokens=model.config.max_position_embeddings,
                batch_tokens=study.capture.batch_tokens,
                pooling="first",
                n_special=len(prefix) + len(suffix),
            )
            with torch.inference_mode():
                for batch in plan.batches:
                    ids = [prefix + list(plan.windows[i].token_ids) + suffix for i in batch]
                    width = max(len(row) for row in ids)
                    input_ids = torch.full((len(ids), width), tokenizer.pad_token_id)
                    mask = torch.zeros((len(ids), width), dtype=torch.long)
                    for row, tokens in enumerate(ids):
                        input_ids[row, : len(tokens)] = torch.tensor(tokens)
                        mask[row, : len(tokens)] = 1
                    model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
            seconds += time.perf_counter() - start
    return seconds, n_sentences, len(study.models)


def _tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in sorted((run_dir / "results").glob("*.parquet"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=REPO / "studies" / "pipeline.yaml")
    parser.add_argument("--reduced", action="store_true", help="the documented fraction")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--runs-dir", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=None, help="default: a fresh folder")
    parser.add_argument("--no-floor", action="store_true", help="skip the bare forward pass")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    overrides = [*(REDUCED if args.reduced else ()), *args.overrides]
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="bench_pipeline_runs_"))
    cache = args.cache or Path(tempfile.mkdtemp(prefix="bench_pipeline_cache_"))
    runs_dir.mkdir(parents=True, exist_ok=True)

    console = Console(width=120)
    cold, cold_dir = run_study(args.study, overrides, runs_dir, cache)
    warm, warm_dir = run_study(args.study, overrides, runs_dir, cache)
    console.print(_parts_table(cold_dir, warm_dir))
    summary = Table(title=f"pipeline wall time, {torch.get_num_threads()} threads")
    for column in ("what", "seconds", "minutes"):
        summary.add_column(column, justify="left" if column == "what" else "right")
    summary.add_row("cold run (empty caches)", f"{cold:.1f}", f"{cold / 60:.1f}")
    summary.add_row("warm rerun (same study)", f"{warm:.1f}", f"{warm / 60:.1f}")
    console.print(summary)
    cold_tables, warm_tables = _tables(cold_dir), _tables(warm_dir)
    assert cold_tables.keys() == warm_tables.keys(), (cold_tables.keys(), warm_tables.keys())
    for name, frame in cold_tables.items():
        pd.testing.assert_frame_equal(warm_tables[name], frame, obj=name)
    console.print(
        f"warm tables identical to cold: {', '.join(cold_tables)}; runs {cold_dir} and {warm_dir}"
    )
    if not args.no_floor:  # last: the numbers above are printed even if this is cut short
        floor, n_sentences, n_models = forward_floor(args.study, overrides)
        console.print(
            f"bare forward pass ({n_sentences} sentences x {n_models} model(s)): {floor:.1f} s "
            f"({floor / 60:.1f} min), the floor for cold; cold is {cold / floor:.1f}x it"
        )


def _parts_table(cold_dir: Path, warm_dir: Path) -> Table:
    """Seconds per part of the cold and the warm run, side by side."""
    frames = {}
    for name, run_dir in (("cold", cold_dir), ("warm", warm_dir)):
        manifest = json.loads((run_dir / "manifest.json").read_text())
        frames[name] = breakdown(manifest).set_index(["stage", "part"]).add_suffix(f"_{name}")
    parts = frames["cold"].join(frames["warm"], how="left")  # cold's order; warm adds no part
    table = Table(title="where the time went (seconds, summed over models, tasks, seeds)")
    for column in ("stage", "part", "cold", "calls", "warm", "calls "):
        table.add_column(column, justify="left" if column in ("stage", "part") else "right")
    for (stage, part), row in parts.iterrows():
        table.add_row(
            stage,
            part,
            f"{row.seconds_cold:.1f}",
            f"{row.calls_cold:.0f}",
            f"{row.seconds_warm:.1f}",
            f"{row.calls_warm:.0f}",
        )
    return table


if __name__ == "__main__":
    main()
