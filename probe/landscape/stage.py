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

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from transformers import AutoModelForSequenceClassification

from probe.errors import ModelError, StudyError
from probe.landscape.config import LandscapeSection, train_job_names
from probe.landscape.directions import (
    Direction,
    Ignore,
    difference,
    model_parameters,
    random_directions,
    save_directions,
)
from probe.landscape.objective import Objective, sst2_objective
from probe.landscape.sharpness import hessian_top_eigenvalue, loss_increase_at_radius
from probe.landscape.surface import (
    centered_grid,
    evaluate_points,
    evaluate_points_distributed,
    line_alphas,
    plane_points,
)
from probe.landscape.trajectory import trajectory_plane
from probe.models import ModelSource, checkpoint_dir, load_config, load_model, load_tokenizer
from probe.rundir import RunContext
from probe.runtime import autocast_dtype

__all__ = ["Checkpoint", "job_checkpoints", "run_landscape"]

METRICS = ("loss", "accuracy")


@dataclass(frozen=True)
class Checkpoint:
    """One saved checkpoint of a job: its label (``step-N``/``final``), step and folder."""

    label: str
    step: int | None
    path: Path


def job_checkpoints(run_dir: str | Path, job: str) -> list[Checkpoint]:
    """``step-*`` checkpoints of ``job`` in step order, then ``final``.

    Raises
    ------
    ModelError
        When the job has no ``step-0`` (initial weights) or no ``final`` checkpoint.
    """
    final = checkpoint_dir(run_dir, job, "final")
    start = checkpoint_dir(run_dir, job, "0")
    steps = sorted(
        int(p.name.removeprefix("step-"))
        for p in start.parent.iterdir()
        if p.name.startswith("step-")
        and p.name.removeprefix("step-").isdigit()
        and (p / "config.json").exists()
    )
    points = [Checkpoint(f"step-{s}", s, checkpoint_dir(run_dir, job, str(s))) for s in steps]
    return [*points, Checkpoint("final", None, final)]


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


class _Distributed:
    """Which process this is and how to gather Python objects (accelerate, if launched by it)."""

    def __init__(self, device: torch.device) -> None:
        from accelerate import PartialState
        from accelerate.utils import gather_object

        # cpu= as the training stage passes it: the first PartialState fixes the shared state.
        state = PartialState(cpu=device.type == "cpu")
        self.index = state.process_index
        self.count = state.num_processes
        self.is_main = state.is_main_process
        # Under `accelerate launch` each process owns one GPU; alone, the study decides.
        self.device = state.device if self.count > 1 else device
        self.gather: Callable[[list], list] = gather_object
        self.wait: Callable[[], None] = state.wait_for_everyone


@contextmanager
def _progress(
    ctx: RunContext, label: str, total: int, enabled: bool
) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda done: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=ctx.console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done: progress.update(task, completed=done)


def _rows(values: np.ndarray, splits: list[str], **columns: Any) -> list[dict]:
    """Tidy rows from ``values`` of shape (n_objectives, 2) (loss, accuracy)."""
    return [
        {"split": split, "metric": metric, "value": float(values[j, m]), **columns}
        for j, split in enumerate(splits)
        for m, metric in enumerate(METRICS)
    ]


def _source(path: Path, job: str, source_run: Path) -> ModelSource:
    source = ModelSource(spec=f"run:{source_run}:{job}@{path.name}", path=str(path))
    config = load_config(source)
    architectures = config.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures) or (
        config.problem_type not in (None, "single_label_classification")
    ):
        raise ModelError(
            f"{path}: job {job!r} did not train a sentence classifier ({architectures}); "
            "list SST-2 fine-tuning jobs in landscape.jobs"
        )
    return source


def _load(path: Path, job: str, source_run: Path, seed: int) -> torch.nn.Module:
    source = _source(path, job, source_run)
    return load_model(source, AutoModelForSequenceClassification, seed=seed).eval()


def _analyse_job(
    ctx: RunContext,
    section: LandscapeSection,
    job: str,
    source_run: Path,
    dist: _Distributed,
    seed: int,
) -> dict[str, list[dict]]:
    """All landscape rows of one job (the same on every process)."""
    device = dist.device
    ignore: Ignore = None if section.ignore == "none" else "biasbn"
    checkpoints = job_checkpoints(source_run, job)
    final = checkpoints[-1]
    # _source fails fast on a job that trained no sentence classifier.
    tokenizer = load_tokenizer(_source(final.path, job, source_run))
    autocast = autocast_dtype(device, ctx.study.precision)
    objectives: dict[str, Objective] = {
        split: sst2_objective(
            tokenizer,
            split,
            n,
            batch_size=section.batch_size,
            max_length=section.max_length,
            device=device,
            autocast=autocast,
        )
        for split, n in section.examples.items()
    }
    splits = list(objectives)
    common = {"model": job, "task": section.task, "seed": seed}
    rows: dict[str, list[dict]] = {
        "trajectory": [],
        "line": [],
        "plane": [],
        "sharpness": [],
        "scale": [],
    }
    show = dist.is_main

    # 1. Trajectory: every checkpoint on the fixed batches (parameters kept on the CPU for PCA).
    #    The training stage's final/ is its last step-N (hard links): it is scored, labelled with
    #    that step, and counted once in the PCA. The final model stays loaded for what follows.
    points: list[Direction] = []
    path: list[Checkpoint] = []
    for checkpoint in checkpoints:
        model = _load(checkpoint.path, job, source_run, seed).to(device)
        params = model_parameters(model, device="cpu")
        step = checkpoint.step
        repeat = checkpoint is final and bool(points) and _same(params, points[-1])
        if repeat:
            step = path[-1].step
        values = evaluate_points(model, [], np.zeros((1, 0)), objectives)[0]
        rows["trajectory"] += _rows(
            values, splits, checkpoint=checkpoint.label, step=step, **common
        )
        if not repeat:
            points.append(params)
            path.append(checkpoint)
        if checkpoint is not final:
            del model
    # Views of the live parameters: only read between grids (each grid restores them exactly).
    theta1 = model_parameters(model, copy=False)
    # Scale context for the sharpness numbers: how far training moved the weights.
    rows["scale"] = _scale_rows(theta1, points[0], common)

    def grid(label: str, directions: list[Direction], coords: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        with _progress(
            ctx, f"{job}: {label}", int(np.ceil(len(coords) / dist.count)), show
        ) as tick:
            values = evaluate_points_distributed(
                model,
                directions,
                coords,
                objectives,
                process_index=dist.index,
                num_processes=dist.count,
                gather=dist.gather,
                on_point=tick,
            )
        seconds = time.perf_counter() - start
        if show:
            ctx.console.print(
                f"{job}: {label}: {len(coords)} points in {seconds:.1f} s "
                f"({len(coords) / seconds:.2f} points/s, {dist.count} process(es))"
            )
        return values

    # 2. Line from the initial (step-0) to the final weights; coefficient 1 - a on
    #    theta_0 - theta_1 keeps a = 1 exactly the trained model.
    center: np.ndarray | None = None
    if section.line is not None:
        alphas = line_alphas(*section.line.alpha, section.line.points)
        toward_start = difference(theta1, {n: t.to(device) for n, t in points[0].items()})
        values = grid("line", [toward_start], (1.0 - alphas)[:, None])
        del toward_start
        for alpha, v in zip(alphas, values, strict=True):
            rows["line"] += _rows(v, splits, checkpoint="final", alpha=float(alpha), **common)

    # 3. Random filter-normalised plane.
    if section.random_plane is not None:
        cfg = section.random_plane
        directions = random_directions(theta1, 2, seed=seed, ignore=ignore)
        xs = ys = centered_grid(cfg.span, cfg.points)
        coords = plane_points(xs, ys)
        values = grid("random plane", directions, coords)
        center = values[len(coords) // 2]
        rows["plane"] += [
            row
            for (x, y), v in zip(coords, values, strict=True)
            for row in _rows(
                v, splits, checkpoint="final", plane="random", x=float(x), y=float(y), **common
            )
        ]
        if section.save_directions and dist.is_main:
            save_directions(
                ctx.run_dir / "landscape" / job / "directions_random.pt",
                {"random": directions},
                seed=seed,
                ignore=section.ignore,
                xs=xs,
                ys=ys,
                checkpoint=str(final.path),
            )
        del directions

    # 4. PCA plane of the trajectory, centred on the final weights and wide enough to hold it.
    if section.pca_plane is not None:
        cfg_pca = section.pca_plane
        plane = trajectory_plane(points, {n: t.cpu() for n, t in theta1.items()}, ignore=ignore)
        directions = [{n: t.to(device) for n, t in d.items()} for d in plane.directions]
        reach = np.abs(plane.coords).max(axis=0) * (1.0 + cfg_pca.margin)
        xs = centered_grid(float(reach[0]), cfg_pca.points)
        ys = centered_grid(float(reach[1]), cfg_pca.points)
        coords = plane_points(xs, ys)
        values = grid("PCA plane", directions, coords)
        ratio = plane.explained_variance_ratio
        rows["plane"] += [
            row
            for (x, y), v in zip(coords, values, strict=True)
            for row in _rows(
                v,
                splits,
                checkpoint="final",
                plane="pca",
                x=float(x),
                y=float(y),
                pc1_variance=float(ratio[0]),
                pc2_variance=float(ratio[1]),
                **common,
            )
        ]
        where = {c.label: xy for c, xy in zip(path, plane.coords, strict=True)}
        where.setdefault(final.label, (0.0, 0.0))  # final/ repeats the last step: the origin
        for label, (x, y) in where.items():
            for row in rows["trajectory"]:
                if row["checkpoint"] == label:
                    row.update(
                        x=float(x),
                        y=float(y),
                        pc1_variance=float(ratio[0]),
                        pc2_variance=float(ratio[1]),
                    )
        if section.save_directions and dist.is_main:
            save_directions(
                ctx.run_dir / "landscape" / job / "directions_pca.pt",
                {"pca": directions},
                seed=seed,
                ignore=section.ignore,
                xs=xs,
                ys=ys,
                trajectory=plane.coords,
                explained_variance_ratio=ratio,
                checkpoints=[c.label for c in path],
            )
        del directions, plane
    del points

    # 5. Sharpness.
    if section.sharpness is not None:
        cfg_s = section.sharpness
        base = (
            center
            if center is not None
            else evaluate_points(model, [], np.zeros((1, 0)), objectives)[0]
        )
        start = time.perf_counter()
        rises = loss_increase_at_radius(
            model,
            objectives,
            cfg_s.radii,
            n_directions=cfg_s.directions,
            seed=seed + 1,
            ignore=ignore,
            base=base,
            process_index=dist.index,
            num_processes=dist.count,
            gather=dist.gather,
        )
        for split, by_radius in rises.items():
            for radius, rise in by_radius.items():
                for metric, value in (
                    ("loss_increase_mean", rise.mean()),
                    ("loss_increase_std", rise.std(ddof=1) if rise.size > 1 else 0.0),
                    ("loss_increase_max", rise.max()),
                ):
                    rows["sharpness"].append(
                        {
                            "split": split,
                            "metric": metric,
                            "value": float(value),
                            "radius": radius,
                            "n_directions": cfg_s.directions,
                            "checkpoint": "final",
                            **common,
                        }
                    )
        hessian_split = "train" if "train" in objectives else splits[0]
        if cfg_s.hessian_iterations > 0 and dist.is_main:
            eigen = hessian_top_eigenvalue(
                model,
                objectives[hessian_split],
                iterations=cfg_s.hessian_iterations,
                tolerance=cfg_s.hessian_tolerance,
                seed=seed,
            )
            rows["sharpness"].append(
                {
                    "split": hessian_split,
                    "metric": "hessian_top_eigenvalue",
                    "value": eigen.value,
                    "iterations": eigen.iterations,
                    "converged": eigen.converged,
                    # Largest-magnitude eigenvalue: negative means the point is no minimum.
                    "dominant_eigenvalue": eigen.dominant,
                    "checkpoint": "final",
                    **common,
                }
            )
        if show:
            ctx.console.print(f"{job}: sharpness in {time.perf_counter() - start:.1f} s")

    return rows


def _same(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def _scale_rows(
    theta1: Mapping[str, torch.Tensor], theta0: Mapping[str, torch.Tensor], common: dict
) -> list[dict]:
    """Distance travelled from the initial weights, absolute and relative to their norm."""
    n_params = sum(t.numel() for t in theta1.values())
    moved = sum(float(((theta1[n].cpu().double() - theta0[n].double()) ** 2).sum()) for n in theta1)
    norm0 = sum(float((theta0[n].double() ** 2).sum()) for n in theta1)
    return [
        {
            "split": pd.NA,
            "metric": "distance_from_init",
            "value": moved**0.5,
            "checkpoint": "final",
            "n_parameters": n_params,
            **common,
        },
        {
            "split": pd.NA,
            "metric": "relative_distance_from_init",
            "value": (moved / norm0) ** 0.5 if norm0 > 0 else float("nan"),
            "checkpoint": "final",
            "n_parameters": n_params,
            **common,
        },
    ]


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
    dist = _Distributed(ctx.device)
    rows: dict[str, list[dict]] = {
        "trajectory": [],
        "line": [],
        "plane": [],
        "sharpness": [],
        "scale": [],
    }
    for job in _jobs(section, ctx, source_run):
        for key, value in _analyse_job(ctx, section, job, source_run, dist, seed).items():
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
