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
   mean loss rise at filter-normalised radii.

Every grid is centred on the final weights (its middle point is the trained model). Directions
are seeded and saved next to the grid (``landscape/<job>/directions_<plane>.pt``). Under
``accelerate launch`` each process evaluates every n-th grid point and the main process gathers
and writes the tables (the runner draws the figures from them).

Results: ``results/landscape_trajectory``, ``landscape_1d``, ``landscape_2d``, ``sharpness``
(tidy, with extra columns ``step``, ``alpha``, ``plane``/``x``/``y``, ``radius``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.table import Table

from probe.errors import StudyError
from probe.landscape.checkpoints import Checkpoint, job_checkpoints
from probe.landscape.config import LandscapeSection, train_job_names
from probe.landscape.job import Distributed, analyse_job, empty_rows
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


def run_landscape(ctx: RunContext) -> None:
    """Stage entry point (see the module docstring)."""
    section = ctx.study.landscape
    if section is None:
        return
    seed = ctx.study.seed if section.seed is None else section.seed
    source_run = Path(section.from_run) if section.from_run else ctx.run_dir
    dist = Distributed(ctx.device)
    rows = empty_rows()
    for job in _jobs(section, ctx, source_run):
        for key, value in analyse_job(ctx, section, job, source_run, dist, seed).items():
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
    _print_sharpness(ctx, ctx.read_table("sharpness"))
    dist.wait()
