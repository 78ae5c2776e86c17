"""Sentence embeddings: whitening is the paper's formula, poolings are what their names say, the
stage writes a tidy table with every pooling x variant x split, and figures come from it."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from transformers import AutoTokenizer, BertModel

from probe.cache import FeatureCache
from probe.embeddings.isotropy import average_cosine, isotropy, variance_shares
from probe.embeddings.pooling import (
    encode_sentences,
    length_batches,
    resolve_pooling,
    sentence_vectors,
)
from probe.embeddings.sts import cosine_similarity, sts_scores
from probe.embeddings.whitening import Whitening, parse_variant
from probe.errors import StudyError
from probe.figures.embeddings import embeddings_figures
from probe.rundir import RunContext, create_run_dir
from probe.runner import stage_figures
from probe.study import parse_study
from probe.validate import check_study
from tests.conftest import minilm_path, tiny_config

SENTENCES = [
    "A man is playing a guitar.",
    "Unbelievably, tokenisation splits words.",
    "Hi",
    "",
    "The cat sat on the mat while the dog slept by the warm fire.",
]


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


# --------------------------------------------------------------------------- whitening


def _paper_whitening(fit: np.ndarray, x: np.ndarray, k: int | None) -> np.ndarray:
    """Su et al. (2021), transcribed: mu, cov, SVD, W = U diag(1/sqrt(s)), y = (x - mu) W[:, :k]."""
    mu = fit.mean(axis=0, keepdims=True)
    cov = np.cov(fit.T)
    u, s, _ = np.linalg.svd(cov)
    W = np.dot(u, np.diag(1 / np.sqrt(s)))
    return np.dot(x - mu, W[:, :k])


@pytest.mark.parametrize("k", [None, 16, 4])
def test_whitening_gives_the_vectors_of_a_direct_numpy_transcription(k: int | None) -> None:
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(32, 32))
    fit = rng.normal(size=(400, 32)) @ mixing + 3.0  # anisotropic, off-centre
    new = rng.normal(size=(50, 32)) @ mixing + 3.0
    whitening = Whitening(n_components=k).fit(fit)
    np.testing.assert_allclose(whitening.transform(new), _paper_whitening(fit, new, k), atol=1e-5)
    np.testing.assert_allclose(whitening.transform(fit), _paper_whitening(fit, fit, k), atol=1e-5)
    assert whitening.kernel_.shape == (32, k or 32)
    assert whitening.components_.shape == (k or 32, 32)


def test_whitened_fit_data_has_zero_mean_and_identity_covariance() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 10)) @ rng.normal(size=(10, 10))
    Y = Whitening().fit_transform(X)
    np.testing.assert_allclose(Y.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(np.cov(Y, rowvar=False), np.eye(10), atol=1e-8)


def test_truncating_a_fit_equals_fitting_fewer_components() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12))
    full = Whitening().fit(X)
    np.testing.assert_allclose(
        full.truncate(5).transform(X), Whitening(n_components=5).fit(X).transform(X), atol=1e-10
    )


def test_centering_only_subtracts_the_fitted_mean() -> None:
    rng = np.random.default_rng(3)
    fit, new = rng.normal(size=(100, 6)) + 5.0, rng.normal(size=(7, 6))
    centering = Whitening(whiten=False).fit(fit)
    np.testing.assert_allclose(centering.transform(new), new - fit.mean(axis=0))
    assert Whitening.from_variant("raw") is None
    assert Whitening.from_variant("center").whiten is False


def test_rank_deficient_vectors_are_whitened_without_infinities() -> None:
    # LayerNorm outputs (and their token means) satisfy one linear constraint: singular covariance.
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 8))
    X -= X.mean(axis=1, keepdims=True)
    Y = Whitening().fit_transform(X)
    assert np.isfinite(Y).all()
    np.testing.assert_allclose(np.cov(Y[:, :7], rowvar=False), np.eye(7), atol=1e-8)


@pytest.mark.parametrize("name", ["whiten-0", "center-5", "raw-3", "whitening", "whiten256"])
def test_bad_variant_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="whiten-<k>"):
        parse_variant(name)


def test_whitening_refuses_to_transform_before_fit_and_wrong_widths() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        Whitening().transform(np.zeros((2, 3)))
    fitted = Whitening().fit(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(ValueError, match=r"\(n_samples, 3\)"):
        fitted.transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"1\.\.3"):
        Whitening(n_components=4).fit(np.zeros((20, 3)))


# --------------------------------------------------------------------------- isotropy and STS


def test_average_cosine_equals_the_mean_over_all_distinct_pairs() -> None:
    X = np.random.default_rng(5).normal(size=(30, 4)) + 1.0
    units = X / np.linalg.norm(X, axis=1, keepdims=True)
    brute = np.mean([units[i] @ units[j] for i, j in itertools.permutations(range(30), 2)])
    assert average_cosine(X) == pytest.approx(brute, abs=1e-12)


def test_isotropy_separates_a_narrow_cone_from_an_isotropic_cloud() -> None:
    rng = np.random.default_rng(6)
    cloud = rng.normal(size=(2000, 20))
    cone = cloud * np.r_[5.0, np.full(19, 0.2)] + 4.0  # one dominant direction, common offset
    iso_cloud, iso_cone = isotropy(cloud, top_k=[1]), isotropy(cone, top_k=[1])
    assert abs(iso_cloud["avg_cosine"]) < 0.01 and iso_cone["avg_cosine"] > 0.5
    assert iso_cloud["top1_variance_share"] < 0.1 < 0.9 < iso_cone["top1_variance_share"]
    whitened = Whitening().fit_transform(cone)
    assert abs(average_cosine(whitened)) < 0.01
    assert variance_shares(whitened, [1])[1] == pytest.approx(1 / 20, abs=1e-8)


def test_sts_scores_are_scipy_correlations_times_100_and_ignore_vector_length() -> None:
    rng = np.random.default_rng(7)
    a, b, gold = rng.normal(size=(50, 8)), rng.normal(size=(50, 8)), rng.uniform(0, 5, size=50)
    cos = np.array(
        [x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b, strict=True)]
    )
    scores = sts_scores(a, b, gold)
    assert scores["spearman"] == pytest.approx(100 * stats.spearmanr(cos, gold).statistic)
    assert scores["pearson"] == pytest.approx(100 * stats.pearsonr(cos, gold).statistic)
    scaled = sts_scores(a * rng.uniform(0.1, 10, size=(50, 1)), b, gold)
    assert scaled == pytest.approx(scores)
    assert cosine_similarity(np.zeros((1, 3)), np.ones((1, 3)))[0] == 0.0


# --------------------------------------------------------------------------- pooling


@pytest.fixture(scope="module")
def tiny() -> tuple[BertModel, object]:
    torch.manual_seed(0)
    return BertModel(tiny_config(num_hidden_layers=3)).eval(), AutoTokenizer.from_pretrained(
        minilm_path()
    )


def test_pooling_names_resolve_to_explicit_layers() -> None:
    assert resolve_pooling("first_last_avg", 6).layers == (1, 6)  # layer 1, not the embeddings
    assert resolve_pooling("mean", 6).spec == "mean@6"
    assert resolve_pooling("cls", 6).spec == "cls@6"
    assert resolve_pooling("mean@0+last", 6).layers == (0, 6)
    assert resolve_pooling("mean_nospecial@2", 6).layer == 2
    assert resolve_pooling("pooler", 6).layer is None
    for bad, message in [
        ("mean@7", "outside 0..6"),
        ("pooler@3", "fixed layers"),
        ("max", "not one of"),
        ("mean@x", "not an integer"),
    ]:
        with pytest.raises(ValueError, match=message):
            resolve_pooling(bad, 6)


def test_every_pooling_equals_its_definition_on_unpadded_hidden_states(tiny: tuple) -> None:
    model, tokenizer = tiny
    specs = ["cls", "pooler", "mean", "mean_nospecial", "first_last_avg", "mean@0+2", "cls@1"]
    # A small budget forces several padded batches of mixed lengths.
    vectors = sentence_vectors(model, tokenizer, SENTENCES, specs, batch_tokens=40)
    for i, sentence in enumerate(SENTENCES):
        batch = tokenizer([sentence], return_tensors="pt")
        with torch.no_grad():
            output = model(**batch, output_hidden_states=True)
        hs = [h[0] for h in output.hidden_states]  # layer l: (seq, d)
        content = slice(1, -1)  # [CLS] ... [SEP]
        expected = {
            "cls@3": hs[3][0],
            "pooler": output.pooler_output[0],
            "mean@3": hs[3].mean(0),
            "mean_nospecial@3": hs[3][content].mean(0) if len(hs[3]) > 2 else torch.zeros(32),
            "first_last_avg": (hs[1].mean(0) + hs[3].mean(0)) / 2,
            "mean@0+2": (hs[0].mean(0) + hs[2].mean(0)) / 2,
            "cls@1": hs[1][0],
        }
        for spec, vector in expected.items():
            np.testing.assert_allclose(
                vectors[spec][i], vector.numpy(), atol=1e-5, err_msg=f"{spec} of sentence {i}"
            )


def test_batch_budget_does_not_change_vectors_and_hooks_are_removed(tiny: tuple) -> None:
    model, tokenizer = tiny
    before = _hook_count(model)
    features = ["mean@1", "cls@3", "pooler"]
    small = encode_sentences(model, tokenizer, SENTENCES, features, batch_tokens=16)
    large = encode_sentences(model, tokenizer, SENTENCES, features, batch_tokens=10_000)
    np.testing.assert_allclose(small, large, atol=1e-5)
    assert small.shape == (3, len(SENTENCES), 32)
    assert _hook_count(model) == before


def test_length_batches_respect_the_budget_and_cover_every_sentence() -> None:
    lengths = np.random.default_rng(8).integers(3, 40, size=200)
    batches = length_batches(lengths, batch_tokens=256)
    assert sorted(np.concatenate(batches).tolist()) == list(range(200))
    assert all(lengths[b].max() * len(b) <= 256 for b in batches)


# --------------------------------------------------------------------------- study and stage


def _study(model_dir: Path, **embeddings: object) -> dict:
    section = {
        "tasks": ["stsb", "sickr"],
        "limit": 40,
        "fit_limit": 60,
        "whitening": ["raw", "center", "whiten", "whiten-8"],
        **embeddings,
    }
    return {
        "name": "emb_test",
        "seed": 1,
        "models": [
            {"spec": str(model_dir), "name": "tiny"},
            {"spec": f"scratch:{model_dir}", "name": "scratch"},
        ],
        "figures": ["html"],
        "device": "cpu",
        "embeddings": section,
    }


def test_study_rejects_bad_poolings_variants_and_corpora_with_their_path(
    tiny_model_dir: Path,
) -> None:
    for key, value, message in [
        ("poolings", ["mean", "mean@x"], "embeddings.poolings.1: pooling 'mean@x'"),
        ("whitening", ["whiten-0"], "embeddings.whitening.0: whitening variant 'whiten-0'"),
        ("fit_on", ["nli:train"], "embeddings.fit_on.0: 'nli:train' is not 'target'"),
        ("fit_on", ["wikitext2:train"], "split must be one of dev, test"),
    ]:
        with pytest.raises(StudyError, match=message):
            parse_study(_study(tiny_model_dir, **{key: value}))


def test_check_fails_fast_when_whiten_k_exceeds_the_model_width(tiny_model_dir: Path) -> None:
    study = parse_study(_study(tiny_model_dir, whitening=["whiten-64"]))
    with pytest.raises(StudyError, match="'whiten-64' keeps 64 dimensions but model tiny has 32"):
        check_study(study)
    study = parse_study(_study(tiny_model_dir, poolings=["mean@5"]))
    with pytest.raises(StudyError, match=r"outside 0\.\.2"):
        check_study(study)


def test_stage_writes_every_pooling_variant_split_and_figures(
    tiny_model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    from probe.embeddings.stage import run_embeddings

    study = parse_study(_study(tiny_model_dir, fit_on=["target", "stsb:train"]))
    check_study(study)
    ctx = RunContext(
        study=study,
        run_dir=create_run_dir(study, tmp_path),
        device=torch.device("cpu"),
        cache=FeatureCache(tmp_path / "cache"),
    )
    ctx.start()
    run_embeddings(ctx)
    stage_figures(ctx, "embeddings")  # the runner draws figures from the table
    table = ctx.read_table("embeddings")
    sts = table[table.metric == "spearman"]
    # 2 models x 7 poolings (5 headline + mean@0, mean@1) x (raw + 3 variants x 2 fit corpora)
    # x 2 tasks x 3 splits.
    assert len(sts) == 2 * 7 * 7 * 2 * 3
    assert set(sts.pooling_spec) == {
        "cls@2",
        "pooler",
        "mean@2",
        "mean_nospecial@2",
        "first_last_avg",
        "mean@0",
        "mean@1",
    }
    assert set(sts.whitening) == {"raw", "center", "whiten", "whiten-8"}
    assert sts[sts.whitening == "raw"].fit_on.isna().all()
    assert set(sts.fit_on.dropna()) == {"target", "stsb:train"}
    assert table.value.between(-100, 100).all() and sts.value.notna().all()
    assert (table[table.pooling == "first_last_avg"].layer.isna()).all()
    assert (table[table.pooling_spec == "mean@1"].layer == 1).all()
    assert (sts[sts.split == "test"].n == 40).all()
    # The scratch model (same architecture, weights seeded by the study seed) is a different model.
    by_model = sts.pivot_table(
        index=["pooling_spec", "whitening", "fit_on", "task", "split"],
        columns="model",
        values="value",
        dropna=False,
    )
    assert not np.allclose(by_model["tiny"], by_model["scratch"], equal_nan=True)
    iso = table[table.metric == "avg_cosine"]
    assert set(iso.split) == {"test"} and not iso.empty
    whitened_target = iso[(iso.whitening == "whiten") & (iso.fit_on == "target")]
    raw = iso[iso.whitening == "raw"]
    assert whitened_target.value.abs().mean() < raw.value.abs().mean()
    figures = sorted(p.name for p in (ctx.run_dir / "figures").glob("*.html"))
    assert figures == [
        "embeddings_isotropy.html",
        "embeddings_layers.html",
        "embeddings_sts_sickr.html",
        "embeddings_sts_stsb.html",
    ]
    # Columns with one meaning each: no probe is fitted, and the whitening has its own column.
    assert table.probe.isna().all() and table.control.isna().all()
    assert set(sts.pooling) == {"cls", "pooler", "mean", "mean_nospecial", "first_last_avg"}
    # A second run of the same study reads the cached vectors and gives the same table.
    again = RunContext(
        study=study,
        run_dir=create_run_dir(study, tmp_path),
        device=torch.device("cpu"),
        cache=FeatureCache(tmp_path / "cache"),
    )
    again.start()
    run_embeddings(again)
    pd.testing.assert_frame_equal(again.read_table("embeddings"), table)


def test_figures_are_built_from_the_table_alone() -> None:
    rows = []
    for model, pooling, control, layer in itertools.product(
        ["base", "tuned"], ["mean@2", "cls@2"], ["raw", "whiten"], [0, 1, 2]
    ):
        kind = pooling.split("@")[0]
        rows.append(
            {
                "model": model,
                "task": "stsb",
                "split": "test",
                "metric": "spearman",
                "pooling": kind,
                "pooling_spec": f"{kind}@{layer}",
                "layer": layer,
                "whitening": control,
                "fit_on": None if control == "raw" else "target",
                "headline": layer == 2,
                "value": 50.0 + layer,
            }
        )
    figures = embeddings_figures(pd.DataFrame(rows))
    assert sorted(figures) == ["embeddings_layers", "embeddings_layers_cls", "embeddings_sts_stsb"]
    heat = figures["embeddings_sts_stsb"]  # a pooling x whitening heat map per model
    assert [t.name for t in heat.data] == ["base", "tuned"]
    assert [list(t.y) for t in heat.data] == [["raw", "whiten"]] * 2
    assert [list(t.x) for t in heat.data] == [["mean@2", "cls@2"]] * 2
    assert len(figures["embeddings_layers"].data) == 4  # 2 models x (raw, whiten)


@pytest.mark.slow
def test_mean_pooling_reproduces_sentence_transformers_all_minilm_l6_v2() -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from probe.models import load_encoder

    encoder = load_encoder("embedded:minilm")
    ours = sentence_vectors(
        encoder.model, encoder.tokenizer, SENTENCES[:3] + SENTENCES[4:], ["mean"]
    )["mean@6"]
    reference = sentence_transformers.SentenceTransformer(minilm_path(), device="cpu").encode(
        SENTENCES[:3] + SENTENCES[4:]
    )
    cosine = cosine_similarity(ours, reference)
    assert cosine.min() > 0.99999
