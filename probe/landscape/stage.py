"""The ``landscape`` stage: loss landscapes of fine-tuning runs (Hao et al. 2019, Li et al. 2018).

For every training job (its checkpoints ``step-0`` = initial weights, ``step-N`` and ``final``):

1. *trajectory*: loss and accuracy of every checkpoint on fixed SST-2 train/dev batches (the
   loss curves);
2. *line*: ``theta(a) = theta_0 + a (theta_1 - theta_0)`` from the initial to the final weights,
   ``a`` on a range beyond [0, 1];
3. *random plane*: ``theta_1 + x d_1 + y d_2`` with filter-normalised Gaussian directions;
4. *PCA plane*: ``theta_1 + x p_1 + y p_2`` with the top-2 principal components of the
   checkpoints, the trajectory projected onto it;
5. *sharpness*: the top Hessian eigenvalue (power iteration on Hessian-vector products) and the
   mean loss rise at filter-normalised radii;
6. *layers* (opt-in): relative weight change per layer and a 1-D curve per layer that moves only
   that layer from its initial to its final weights (:mod:`probe.landscape.layers`);
7. *convergence* (opt-in): steps and seconds to a ladder of training-subset losses, read from
   the training table (:mod:`probe.landscape.convergence`).

Rows carry the job's ``arm`` (the setting it is one seed of), ``init`` (pretrained or scratch)
and ``pair`` (the model spec both inits share), so seeds and arms can be compared.

Every grid is centred on the final weights (its middle point is the trained model). Directions
are seeded and saved next to the grid (``landscape/<job>/directions_<plane>.pt``). Under
``accelerate launch`` each process evaluates every n-th grid point and the main process gathers
and writes the tables (the runner draws the figures from them).

Results: ``results/landscape_trajectory``, ``landscape_1d``, ``landscape_2d``, ``sharpness``,
``landscape_layers``, ``landscape_convergence`` (tidy, with extra columns ``step``, ``alpha``,
``plane``/``x``/``y``, ``radius``, ``part``, ``threshold``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.table import Table

from probe.errors import StudyError
from probe.landscape.checkpoints import Checkpoint, job_checkpoints
from probe.landscape.config import LandscapeSection, train_job_names
from probe.landscape.convergence import convergence_rows
from probe.landscape.job import Distributed, analyse_job, empty_rows
from probe.landscape.summary import markdown, pair_summary
from probe.results import read_table
from probe.rundir import RunContext

__all__ = ["Checkpoint", "job_checkpoints", "run_landscape"]


def _jobs(section: LandscapeSection, ctx: RunContext, source_run: Path) -> list[str]:
    if section.jobs:
        return list(section.jobs)
    named = train_job_names(ctx.study.train, section.task) if section.from_run is None else None
    if named:
        return named
    root = source_run / "checkpoints"
    jobs = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not jobs:
        raise StudyError(f"landscape: {source_run} has no trained jobs under checkpoints/")
    return jobs


def _print_sharpness(ctx: RunContext, table: pd.DataFrame) -> None:
    shown = table[
        table["metric"].isin(
            ["hessian_top_eigenvalue", "loss_increase_mean", "relative_distance_from_init"]
        )
    ]
    out = Table("model", "metric", "split", "radius", "value", title="sharpness")
    for row in shown.itertuples(index=False):
        radius = getattr(row, "radius", None)
        out.add_row(
            str(row.model),
            str(row.metric),
            "" if pd.isna(row.split) else str(row.split),
            "" if radius is None or pd.isna(radius) else f"{radius:g}",
            f"{row.value:.4g}",
        )
    ctx.console.print(out)


def _print_pairs(ctx: RunContext) -> None:
    """The per-pair table (mean ± std over seeds), where the jobs carry pair/init labels."""
    names = ("landscape_convergence", "sharpness", "landscape_trajectory")
    summary = pair_summary({name: ctx.read_table(name) for name in names})
    for pair in summary["pair"].unique() if not summary.empty else []:
        ctx.console.print(f"\n{pair}: pretrained vs scratch (mean ± std over seeds)")
        ctx.console.print(markdown(summary, str(pair)), markup=False, soft_wrap=True)


def _convergence(
    section: LandscapeSection, source_run: Path, jobs: list[str], labels: dict[str, dict]
) -> list[dict]:
    """Convergence rows of every job, from the source run's training table."""
    assert section.convergence is not None
    path = source_run / "results" / "training.parquet"
    if not path.is_file():
        raise StudyError(f"landscape.convergence: {path} is missing; the train stage writes it")
    training = read_table(path)
    return [
        row
        for job in jobs
        for row in convergence_rows(
            training, job, section.convergence.thresholds, checkpoint="final", **labels[job]
        )
    ]


def run_landscape(ctx: RunContext) -> None:
    """Stage entry point (see the module docstring)."""
    section = ctx.study.landscape
    if section is None:
        return
    seed = ctx.study.seed if section.seed is None else section.seed
    source_run = Path(section.from_run) if section.from_run else ctx.run_dir
    dist = Distributed(ctx.device)
    rows = empty_rows()
    jobs = _jobs(section, ctx, source_run)
    labels: dict[str, dict] = {}
    for job in jobs:
        job_rows = analyse_job(ctx, section, job, source_run, dist, seed)
        labels[job] = {
            k: job_rows["trajectory"][0].get(k) for k in ("model", "task", "arm", "init", "pair")
        }
        for key, value in job_rows.items():
            rows[key] += value
    if not dist.is_main:
        dist.wait()
        return
    ctx.write_table("landscape_trajectory", rows["trajectory"])
    if rows["line"]:
        ctx.write_table("landscape_1d", rows["line"])
    if rows["plane"]:
        ctx.write_table("landscape_2d", rows["plane"])
    sharpness = rows["sharpness"] + rows["scale"]
    ctx.write_table("sharpness", sharpness)
    if rows["layers"]:
        ctx.write_table("landscape_layers", rows["layers"])
    if section.convergence is not None:
        ctx.write_table("landscape_convergence", _convergence(section, source_run, jobs, labels))
    _print_sharpness(ctx, ctx.read_table("sharpness"))
    if section.convergence is not None:
        _print_pairs(ctx)
    dist.wait()
