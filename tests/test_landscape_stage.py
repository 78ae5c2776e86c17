"""The landscape stage end to end on a fake training run (tiny BERTs, real SST-2 batches)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertForSequenceClassification

from probe.cache import FeatureCache
from probe.errors import StudyError
from probe.landscape.directions import load_directions, model_parameters, random_directions
from probe.landscape.objective import sst2_objective
from probe.landscape.stage import job_checkpoints, run_landscape
from probe.rundir import RunContext, create_run_dir
from probe.runner import stage_figures
from probe.study import parse_study
from probe.validate import check_study
from tests.conftest import DATA_DIR, minilm_path, tiny_config

JOBS = ("pretrained", "scratch")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, _one_thread) -> Path:
    """A run folder laid out like the training stage's: step-0, step-N and final per job."""
    if not (DATA_DIR / "sst2_glue").is_dir():
        pytest.skip(f"SST-2 not found in {DATA_DIR}; set PROBE_DATA_DIR")
    import os

    os.environ["PROBE_DATA_DIR"] = str(DATA_DIR)
    run = tmp_path_factory.mktemp("trained_run")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    batches = sst2_objective(tokenizer, "train", 64, batch_size=16, max_length=32).batches
    for seed, job in enumerate(JOBS):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(tiny_config(num_labels=2))
        folder = run / "checkpoints" / job
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for step in range(9):
            if step % 2 == 0:
                model.save_pretrained(folder / f"step-{step}")
                tokenizer.save_pretrained(folder / f"step-{step}")
            if step == 8:
                break
            loss = model(**batches[step % len(batches)]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.save_pretrained(folder / "final")
        tokenizer.save_pretrained(folder / "final")
    return run


def _study(run: Path, **landscape):
    section = {
        "from_run": str(run),
        "examples": {"train": 32, "dev": 24},
        "batch_size": 16,
        "max_length": 32,
        "line": {"alpha": [-0.5, 1.5], "points": 5},
        "random_plane": {"span": 0.5, "points": 3},
        "pca_plane": {"points": 3},
        "sharpness": {"hessian_iterations": 3, "radii": [0.1], "directions": 2},
    }
    section.update(landscape)
    return parse_study({"name": "land", "landscape": section, "figures": ["html"]})


@pytest.fixture(scope="module")
def landscape_run(trained_run, tmp_path_factory) -> RunContext:
    study = _study(trained_run)
    check_study(study)
    ctx = RunContext(
        study=study,
        run_dir=create_run_dir(study, tmp_path_factory.mktemp("runs")),
        device=torch.device("cpu"),
        cache=FeatureCache(),
    )
    ctx.start()
    run_landscape(ctx)
    stage_figures(ctx, "landscape")  # the runner draws figures from the tables
    return ctx


def test_stage_writes_tidy_tables_and_figures(landscape_run):
    ctx = landscape_run
    for name in ("landscape_trajectory", "landscape_1d", "landscape_2d", "sharpness"):
        table = ctx.read_table(name)
        assert set(table["model"]) == set(JOBS), name
        assert {"study", "model", "checkpoint", "task", "split", "metric", "value"} <= set(table)
    plane = ctx.read_table("landscape_2d")
    assert set(plane["plane"]) == {"random", "pca"} and {"x", "y"} <= set(plane)
    assert len(plane) == 2 * 2 * 9 * 2 * 2  # jobs x planes x points x splits x metrics
    line = ctx.read_table("landscape_1d")
    assert sorted(set(line["alpha"])) == [-0.5, 0.0, 0.5, 1.0, 1.5]
    sharp = ctx.read_table("sharpness")
    eig = sharp[sharp["metric"] == "hessian_top_eigenvalue"]
    assert len(eig) == 2 and np.isfinite(eig["value"]).all()
    assert len(sharp[sharp["metric"] == "loss_increase_mean"]) == 2 * 2  # jobs x splits
    figures = {p.stem for p in (ctx.run_dir / "figures").glob("*.html")}
    assert {
        "landscape_1d",
        "landscape_2d_random",
        "landscape_2d_pca",
        "landscape_3d_random",
        "landscape_curves",
        "landscape_sharpness",
    } <= figures


def test_centre_of_every_2d_grid_is_the_trained_model_on_the_same_batches(landscape_run):
    ctx = landscape_run
    plane = ctx.read_table("landscape_2d")
    trajectory = ctx.read_table("landscape_trajectory")
    final = trajectory[trajectory["checkpoint"] == "final"].set_index(["model", "split", "metric"])
    centre = plane[(plane["x"] == 0) & (plane["y"] == 0)]
    assert len(centre) == 2 * 2 * 2 * 2  # jobs x planes x splits x metrics
    for row in centre.itertuples():
        assert row.value == final.loc[(row.model, row.split, row.metric), "value"]
    line = ctx.read_table("landscape_1d")
    at_one = line[line["alpha"] == 1.0].set_index(["model", "split", "metric"])["value"]
    assert (at_one == final["value"].reindex(at_one.index)).all()
    start = trajectory[trajectory["checkpoint"] == "step-0"].set_index(["model", "split", "metric"])
    at_zero = line[line["alpha"] == 0.0].set_index(["model", "split", "metric"])["value"]
    np.testing.assert_allclose(at_zero, start["value"].reindex(at_zero.index), rtol=1e-5)


def test_trajectory_is_projected_with_the_final_weights_at_the_origin(landscape_run):
    trajectory = landscape_run.read_table("landscape_trajectory")
    steps = trajectory[trajectory["checkpoint"] != "final"]
    assert sorted(set(steps["step"])) == [0, 2, 4, 6, 8]
    final = trajectory[trajectory["checkpoint"] == "final"]
    np.testing.assert_allclose(final[["x", "y"]].to_numpy(float), 0.0, atol=1e-6)
    assert (final["step"] == 8).all()  # the same weights as step-8
    assert trajectory[["x", "y"]].notna().all().all()


def test_saved_directions_are_the_seeded_ones(landscape_run, trained_run):
    ctx = landscape_run
    directions, meta = load_directions(
        ctx.run_dir / "landscape" / "scratch" / "directions_random.pt"
    )
    assert meta["seed"] == ctx.study.seed and list(meta["xs"]) == [-0.5, 0.0, 0.5]
    final = BertForSequenceClassification.from_pretrained(
        job_checkpoints(trained_run, "scratch")[-1].path
    )
    expected = random_directions(model_parameters(final), 2, seed=ctx.study.seed)
    for k in range(2):
        assert all(torch.equal(directions["random"][k][n], expected[k][n]) for n in expected[k])
    pca, meta = load_directions(ctx.run_dir / "landscape" / "scratch" / "directions_pca.pt")
    # final/ repeats step-8 (as the training stage saves it): counted once in the PCA.
    assert len(pca["pca"]) == 2 and meta["checkpoints"] == [f"step-{s}" for s in range(0, 9, 2)]


def test_config_rejects_even_grids_unknown_jobs_and_missing_checkpoints(trained_run):
    with pytest.raises(StudyError, match=r"random_plane\.points: must be odd"):
        _study(trained_run, random_plane={"points": 4})
    with pytest.raises(StudyError, match="needs trained checkpoints"):
        study = parse_study({"name": "x", "landscape": {}})
        check_study(study)
    with pytest.raises(StudyError, match="no checkpoints"):
        study = _study(trained_run.parent)
        check_study(study)


def test_a_job_that_trained_no_sentence_classifier_is_refused(tmp_path):
    from transformers import BertModel

    from probe.errors import ModelError

    for name in ("step-0", "final"):
        BertModel(tiny_config()).save_pretrained(tmp_path / "checkpoints" / "mlm" / name)
    study = _study(tmp_path, jobs=["mlm"])
    ctx = RunContext(
        study=study,
        run_dir=create_run_dir(study, tmp_path / "runs"),
        device=torch.device("cpu"),
        cache=FeatureCache(),
    )
    with pytest.raises(ModelError, match="did not train a sentence classifier"):
        run_landscape(ctx)
