"""Studies over the user's own files run end to end like built-in tasks, with the same numbers."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import yaml
from rich.console import Console

from probe.runner import run_study
from tests.own_data import OWN


def _run(tmp_path: Path, model_dir: Path, tasks: list, **probe: object) -> tuple[Path, str]:
    study = {
        "name": "own",
        "models": [{"spec": str(model_dir), "name": "tiny"}],
        "probe": {"tasks": tasks, "C": [1.0], "bootstrap": 20, **probe},
        "figures": ["html"],
    }
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(study))
    buffer = io.StringIO()
    run_dir = run_study(path, runs_dir=tmp_path / "runs", console=Console(file=buffer, width=200))
    return run_dir, buffer.getvalue()


def test_german_treebank_edge_probing_and_tsv_tasks_run_end_to_end(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    tasks = [
        {"name": "upos_de", "format": "conllu", "path": str(OWN / "ud_german_tiny"),
         "label": "upos"},
        {"name": "relations_de", "format": "edge_probing",
         "train": str(OWN / "edge_relations.train.jsonl"),
         "test": str(OWN / "edge_relations.test.jsonl")},
        {"name": "subject_number", "format": "tsv", "path": str(OWN / "subject_number.tsv"),
         "label": "subject_number"},
    ]  # fmt: skip
    run_dir, log = _run(tmp_path, tiny_model_dir, tasks)
    table = pd.read_parquet(run_dir / "results" / "probe.parquet")
    assert list(table.task.unique()) == ["upos_de", "relations_de", "subject_number"]
    task_acc = table[(table.metric == "accuracy") & (table.control == "task")]
    for task, rows in task_acc[task_acc.probe == "linear"].groupby("task"):
        assert sorted(rows.layer.unique()) == [0, 1, 2], task
    assert {"control", "task"} <= set(table.control)  # control tasks ran too
    assert "selectivity" in set(table.metric)
    # Carved splits are printed with their seed.
    assert "seed=0" in log and "subject_number.tsv" in log
    assert any((run_dir / "figures").rglob("*.html"))
    # UPOS of the German templates is learnable from a random tiny model's embeddings.
    upos = task_acc[(task_acc.task == "upos_de") & (task_acc.split == "test")]
    majority = upos[upos.probe == "majority"].value.iloc[0]
    assert upos[upos.probe == "linear"].value.max() > majority + 0.2


def test_ud_ewt_through_the_file_route_gives_the_builtin_numbers(
    tmp_path: Path, tiny_model_dir: Path, data_dir: Path
) -> None:
    own = {"name": "upos_file", "format": "conllu", "path": str(data_dir / "ud_english_ewt"),
           "label": "upos"}  # fmt: skip
    run_dir, _ = _run(
        tmp_path, tiny_model_dir, ["upos", own], limit={"train": 60, "dev": 20, "test": 20}
    )
    table = pd.read_parquet(run_dir / "results" / "probe.parquet")
    keys = ["layer", "split", "metric", "probe", "control", "seed"]
    builtin = table[table.task == "upos"].set_index(keys).value.sort_index()
    from_file = table[table.task == "upos_file"].set_index(keys).value.sort_index()
    assert len(builtin) > 20
    pd.testing.assert_series_equal(builtin, from_file, check_exact=True)


def test_own_sentence_pairs_are_scored_by_the_embeddings_stage(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    study = {
        "name": "own_sts",
        "models": [{"spec": str(tiny_model_dir), "name": "tiny"}],
        "embeddings": {
            "tasks": [{"name": "sts_de", "format": "tsv", "path": str(OWN / "sts_de.tsv")}],
            "splits": ["test"], "poolings": ["mean"], "layerwise": [], "whitening": ["raw"],
            "isotropy_splits": ["test"],
        },
        "figures": ["html"],
    }  # fmt: skip
    path = tmp_path / "own_sts.yaml"
    path.write_text(yaml.safe_dump(study))
    run_dir = run_study(path, runs_dir=tmp_path / "runs", console=Console(file=io.StringIO()))
    table = pd.read_parquet(run_dir / "results" / "embeddings.parquet")
    spearman = table[(table.task == "sts_de") & (table.metric == "spearman")]
    assert len(spearman) == 1 and spearman.n.iloc[0] == 6  # test = a seeded 10% of 60 pairs
    assert -100 <= spearman.value.iloc[0] <= 100
