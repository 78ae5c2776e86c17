"""The similarity stage end to end on tiny models and a slice of real UD EWT."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console

from probe.errors import StudyError
from probe.figures.similarity import similarity_figures
from probe.runner import check_study, run_study
from probe.similarity.cka import linear_cka
from probe.similarity.summary import best_heads, mostly_shares
from probe.study import load_study, parse_study


def _study(tmp_path: Path, model_dir: Path, **similarity) -> Path:
    study = {
        "name": "tiny_similarity",
        "models": [
            {"spec": str(model_dir), "name": "tiny"},
            {"spec": f"scratch:{model_dir}", "name": "tiny-scratch"},
        ],
        "capture": {"pooling": "mean"},
        "similarity": similarity
        or {
            "cka": {"limit": 40, "baseline_draws": 2, "batch_size": 100},
            "attention": {"limit": 30, "models": ["tiny"]},
        },
        "figures": ["html"],
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.fixture(scope="module")
def run(tiny_model_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("similarity")
    buffer = io.StringIO()
    run_dir = run_study(
        _study(tmp, tiny_model_dir), runs_dir=tmp / "runs", console=Console(file=buffer, width=200)
    )
    return run_dir, buffer.getvalue()


def test_stage_writes_cka_and_attention_tables_and_figures(run):
    from probe.results import read_table

    run_dir, output = run
    cka = read_table(run_dir / "results" / "cka.parquet")
    real = cka[cka.control == "task"]
    # within maps of both models (2 layers + embeddings = 3x3) and scratch vs tiny (3x3)
    assert len(real[real.metric == "cka_unbiased"]) == 3 * 9
    diagonal = real[(real.model == real.model_b) & (real.layer == real.layer_b)]
    assert np.allclose(diagonal.value, 1.0)
    baseline = cka[cka.control == "random"]
    assert set(baseline.metric) == {"cka_biased", "cka_unbiased"} and len(baseline) == 4
    attention = read_table(run_dir / "results" / "attention.parquet")
    assert set(attention[attention.probe == "attention"].model) == {"tiny"}
    assert set(attention[attention.probe == "offset"].offset) == {-3, -2, -1, 1, 2, 3}
    figures = {p.stem for p in (run_dir / "figures").glob("*.html")}
    assert {"cka_tiny", "cka_tiny-scratch", "cka_by_layer", "attention_tiny"} <= figures
    assert "attention_relations_tiny" in figures
    assert "random baseline" in output and "most-attended word" in output


def test_cka_table_equals_cka_recomputed_from_the_cached_features(run):
    from probe.cache import FeatureCache
    from probe.results import read_table

    run_dir, _ = run
    cka = read_table(run_dir / "results" / "cka.parquet")
    entries = [FeatureCache().get(p.name) for p in (FeatureCache().root / "features").iterdir()]
    n = int(cka.n.dropna().iloc[0])
    tiny = [e for e in entries if e is not None and e.features.shape[1] == n]
    assert tiny, "the CKA features were not cached"
    features = tiny[0].features
    row = cka[
        (cka.control == "task") & (cka.metric == "cka_unbiased") & (cka.layer == 0)
        & (cka.layer_b == 2)
    ]  # fmt: skip
    expected = linear_cka(features[0], features[2], unbiased=True)
    assert any(np.isclose(row.value, expected, atol=1e-9))


def test_summaries_name_the_best_head_and_the_mostly_shares(run):
    from probe.results import read_table

    run_dir, _ = run
    attention = read_table(run_dir / "results" / "attention.parquet")
    best = best_heads(attention)
    assert {"all", "det", "nsubj"} <= set(best.relation)
    assert best.accuracy.between(0, 1).all() and best.offset.isin([-3, -2, -1, 1, 2, 3]).all()
    shares = mostly_shares(attention)
    assert list(shares.layer) == [1, 2]
    assert shares[["attn_cls", "attn_sep", "attn_punct"]].stack().between(0, 1).all()
    # figures can be rebuilt from the tables alone, in the paper style too
    assert similarity_figures({"attention": attention}, style="paper")


def test_similarity_section_errors_name_the_field(tiny_model_dir, tmp_path):
    with pytest.raises(StudyError, match=r"similarity: .*cka"):
        parse_study({"name": "x", "similarity": {}})
    with pytest.raises(StudyError, match=r"similarity\.cka\.data"):
        parse_study({"name": "x", "similarity": {"cka": {"data": "wiki:dev"}}})
    study = load_study(_study(tmp_path, tiny_model_dir, cka={"reference": "nope"}))
    with pytest.raises(StudyError, match=r"similarity\.cka\.reference: 'nope'"):
        check_study(study)
    study = load_study(_study(tmp_path, tiny_model_dir, attention={"models": ["tiny", "x"]}))
    with pytest.raises(StudyError, match=r"similarity\.attention\.models\.1"):
        check_study(study)


def test_figures_of_two_runs_combined_keep_each_models_own_map(run):
    from probe.results import read_table
    from probe.runs import combine_runs

    run_dir, _ = run
    cka = read_table(run_dir / "results" / "cka.parquet")
    combined = combine_runs({"a": cka, "b": cka})
    figures = similarity_figures({"cka": combined})
    assert {"cka_a-tiny", "cka_b-tiny", "cka_a-tiny-scratch", "cka_by_layer"} <= set(figures)
    # one line per run in the by-layer figure (scratch vs tiny), for each estimator
    assert len([t for t in figures["cka_by_layer"].data if t.type == "scatter"]) == 4


def test_runner_draws_the_registry_figures_and_export_covers_them(run, tmp_path):
    from probe.export import export_run

    run_dir, _ = run
    drawn = {p.stem for p in (run_dir / "figures").glob("*.html")}
    assert {"cka_tiny", "cka_by_layer", "attention_tiny", "attention_relations_tiny"} <= drawn
    result = export_run(run_dir, formats="html", out=tmp_path / "paper")
    exported = {p.stem for p in (tmp_path / "paper").glob("*.html")}
    assert drawn <= exported, result


@pytest.mark.parametrize(
    ("page", "needle"),
    [
        ("views/cka.py", "Linear CKA between layers: tiny"),
        ("views/attention.py", "Attention heads"),
    ],
)
def test_dashboard_pages_draw_the_similarity_figures(run, tmp_path, page, needle):
    import shutil

    from tests.test_dashboard import _app, _charts

    run_dir, _ = run
    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs / "tiny_similarity" / run_dir.name)
    at = _app(runs, [f"tiny_similarity/{run_dir.name}"], page)
    titles = " ".join(str(c["layout"].get("title", {}).get("text", "")) for c in _charts(at))
    assert needle in titles
    assert len(at.dataframe) >= 2  # the tables under the figures
