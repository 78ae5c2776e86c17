"""One job's landscape analysis as named steps over a small shared state (:class:`JobState`).

:func:`analyse_job` runs them in order: open the job (checkpoints, fixed batches), score the
trajectory (which leaves the final model loaded), the line, the random plane, the PCA plane and
the sharpness. Every grid is centred on the final weights and restores them exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from probe.landscape.checkpoints import (
    Checkpoint,
    classifier_source,
    job_checkpoints,
    load_classifier,
)
from probe.landscape.config import (
    LandscapeSection,
    LayersSection,
    LineSection,
    PCAPlaneSection,
    RandomPlaneSection,
    SharpnessSection,
)
from probe.landscape.directions import (
    Direction,
    Ignore,
    difference,
    model_parameters,
    random_directions,
    save_directions,
)
from probe.landscape.layers import layer_curve, layer_parts, relative_change
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
from probe.model_spec import ModelSpec
from probe.models import load_tokenizer
from probe.rundir import RunContext
from probe.runtime import autocast_dtype

__all__ = ["Distributed", "JobState", "analyse_job", "empty_rows"]

METRICS = ("loss", "accuracy")


class Distributed:
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


def empty_rows() -> dict[str, list[dict]]:
    names = ("trajectory", "line", "plane", "sharpness", "scale", "layers")
    return {name: [] for name in names}


@dataclass
class JobState:
    """What the steps of one job's analysis share (built by :func:`_open_job`).

    ``model`` is the final model once :func:`_score_trajectory` ran; ``theta1`` views its live
    parameters (only read between grids: each grid restores them exactly). ``points`` are the
    distinct checkpoints' parameters on the CPU (the trajectory, for the line and PCA plane) and
    ``path`` their checkpoints; ``center`` is the random plane's centre value, reused as the
    sharpness baseline.
    """

    ctx: RunContext
    section: LandscapeSection
    job: str
    source_run: Path
    dist: Distributed
    seed: int
    ignore: Ignore
    checkpoints: list[Checkpoint]
    objectives: dict[str, Objective]
    common: dict[str, Any]
    rows: dict[str, list[dict]] = field(default_factory=empty_rows)
    model: torch.nn.Module | None = None
    theta1: dict[str, torch.Tensor] = field(default_factory=dict)
    points: list[Direction] = field(default_factory=list)
    path: list[Checkpoint] = field(default_factory=list)
    center: np.ndarray | None = None

    @property
    def splits(self) -> list[str]:
        return list(self.objectives)

    @property
    def final(self) -> Checkpoint:
        return self.checkpoints[-1]

    @property
    def device(self) -> torch.device:
        return self.dist.device

    def live_model(self) -> torch.nn.Module:
        if self.model is None:
            raise RuntimeError("landscape: the trajectory step loads the final model first")
        return self.model


def _open_job(
    ctx: RunContext,
    section: LandscapeSection,
    job: str,
    source_run: Path,
    dist: Distributed,
    seed: int,
) -> JobState:
    """Checkpoints and the fixed train/dev batches of one job."""
    checkpoints = job_checkpoints(source_run, job)
    # classifier_source fails fast on a job that trained no sentence classifier.
    tokenizer = load_tokenizer(classifier_source(checkpoints[-1].path, job, source_run))
    autocast = autocast_dtype(dist.device, ctx.study.precision)
    objectives: dict[str, Objective] = {
        split: sst2_objective(
            tokenizer,
            split,
            n,
            batch_size=section.batch_size,
            max_length=section.max_length,
            device=dist.device,
            autocast=autocast,
        )
        for split, n in section.examples.items()
    }
    return JobState(
        ctx=ctx,
        section=section,
        job=job,
        source_run=source_run,
        dist=dist,
        seed=seed,
        ignore=None if section.ignore == "none" else "biasbn",
        checkpoints=checkpoints,
        objectives=objectives,
        common={"model": job, "task": section.task, "seed": seed, **job_labels(checkpoints[-1])},
    )


def job_labels(final: Checkpoint) -> dict[str, str]:
    """``arm`` (the setting the job is one seed of), ``init`` (pretrained or scratch) and ``pair``
    (the model spec both inits share), from the job config its final checkpoint records."""
    from probe.training.checkpoint import STATE_FILE, load_state

    if not (final.path / STATE_FILE).is_file():
        return {}  # not written by probe's training stage: nothing to group it by
    job = load_state(final.path)["job"]
    spec = ModelSpec.parse(job["model"])
    scratch = spec.kind == "scratch" and spec.inner is not None
    return {
        "arm": job.get("arm") or job["name"],
        "init": "scratch" if scratch else "pretrained",
        "pair": spec.inner.text if scratch else spec.text,
    }


def _score_trajectory(state: JobState) -> None:
    """1. Every checkpoint on the fixed batches (parameters kept on the CPU for PCA).

    The training stage's final/ is its last step-N (hard links): it is scored, labelled with
    that step, and counted once in the PCA. The final model stays loaded for what follows.
    """
    final = state.final
    for checkpoint in state.checkpoints:
        model = load_classifier(checkpoint.path, state.job, state.source_run, state.seed).to(
            state.device
        )
        params = model_parameters(model, device="cpu")
        step = checkpoint.step
        repeat = checkpoint is final and bool(state.points) and _same(params, state.points[-1])
        if repeat:
            step = state.path[-1].step
        values = evaluate_points(model, [], np.zeros((1, 0)), state.objectives)[0]
        state.rows["trajectory"] += _rows(
            values, state.splits, checkpoint=checkpoint.label, step=step, **state.common
        )
        if not repeat:
            state.points.append(params)
            state.path.append(checkpoint)
        if checkpoint is final:
            state.model = model
        del model
    state.theta1 = model_parameters(state.live_model(), copy=False)
    # Scale context for the sharpness numbers: how far training moved the weights.
    state.rows["scale"] = _scale_rows(state.theta1, state.points[0], state.common)


def _grid(
    state: JobState, label: str, directions: list[Direction], coords: np.ndarray
) -> np.ndarray:
    """Values of shape (len(coords), n_splits, 2) at ``theta1 + coords @ directions``."""
    dist = state.dist
    start = time.perf_counter()
    with _progress(
        state.ctx,
        f"{state.job}: {label}",
        int(np.ceil(len(coords) / dist.count)),
        dist.is_main,
    ) as tick:
        values = evaluate_points_distributed(
            state.live_model(),
            directions,
            coords,
            state.objectives,
            process_index=dist.index,
            num_processes=dist.count,
            gather=dist.gather,
            on_point=tick,
        )
    seconds = time.perf_counter() - start
    if dist.is_main:
        state.ctx.console.print(
            f"{state.job}: {label}: {len(coords)} points in {seconds:.1f} s "
            f"({len(coords) / seconds:.2f} points/s, {dist.count} process(es))"
        )
    return values


def _line(state: JobState, cfg: LineSection) -> None:
    """2. Line from the initial (step-0) to the final weights.

    The coefficient 1 - a on theta_0 - theta_1 keeps a = 1 exactly the trained model.
    """
    alphas = line_alphas(*cfg.alpha, cfg.points)
    start = {n: t.to(state.device) for n, t in state.points[0].items()}
    toward_start = difference(state.theta1, start)
    del start
    values = _grid(state, "line", [toward_start], (1.0 - alphas)[:, None])
    for alpha, v in zip(alphas, values, strict=True):
        state.rows["line"] += _rows(
            v, state.splits, checkpoint="final", alpha=float(alpha), **state.common
        )


def _random_plane(state: JobState, cfg: RandomPlaneSection) -> None:
    """3. Random filter-normalised plane; its centre value is kept for the sharpness step."""
    directions = random_directions(state.theta1, 2, seed=state.seed, ignore=state.ignore)
    xs = ys = centered_grid(cfg.span, cfg.points)
    coords = plane_points(xs, ys)
    values = _grid(state, "random plane", directions, coords)
    state.center = values[len(coords) // 2]
    state.rows["plane"] += [
        row
        for (x, y), v in zip(coords, values, strict=True)
        for row in _rows(
            v,
            state.splits,
            checkpoint="final",
            plane="random",
            x=float(x),
            y=float(y),
            **state.common,
        )
    ]
    if state.section.save_directions and state.dist.is_main:
        save_directions(
            state.ctx.run_dir / "landscape" / state.job / "directions_random.pt",
            {"random": directions},
            seed=state.seed,
            ignore=state.section.ignore,
            xs=xs,
            ys=ys,
            checkpoint=str(state.final.path),
        )


def _pca_plane(state: JobState, cfg: PCAPlaneSection) -> None:
    """4. PCA plane of the trajectory, centred on the final weights and wide enough to hold it."""
    theta1_cpu = {n: t.cpu() for n, t in state.theta1.items()}
    plane = trajectory_plane(state.points, theta1_cpu, ignore=state.ignore)
    directions = [{n: t.to(state.device) for n, t in d.items()} for d in plane.directions]
    reach = np.abs(plane.coords).max(axis=0) * (1.0 + cfg.margin)
    xs = centered_grid(float(reach[0]), cfg.points)
    ys = centered_grid(float(reach[1]), cfg.points)
    coords = plane_points(xs, ys)
    values = _grid(state, "PCA plane", directions, coords)
    variance = {
        "pc1_variance": float(plane.explained_variance_ratio[0]),
        "pc2_variance": float(plane.explained_variance_ratio[1]),
    }
    state.rows["plane"] += [
        row
        for (x, y), v in zip(coords, values, strict=True)
        for row in _rows(
            v,
            state.splits,
            checkpoint="final",
            plane="pca",
            x=float(x),
            y=float(y),
            **variance,
            **state.common,
        )
    ]
    _place_trajectory(state, plane.coords, variance)
    if state.section.save_directions and state.dist.is_main:
        save_directions(
            state.ctx.run_dir / "landscape" / state.job / "directions_pca.pt",
            {"pca": directions},
            seed=state.seed,
            ignore=state.section.ignore,
            xs=xs,
            ys=ys,
            trajectory=plane.coords,
            explained_variance_ratio=plane.explained_variance_ratio,
            checkpoints=[c.label for c in state.path],
        )


def _place_trajectory(state: JobState, coords: np.ndarray, variance: dict[str, float]) -> None:
    """Add each checkpoint's PCA-plane coordinates to its trajectory rows."""
    where = {c.label: xy for c, xy in zip(state.path, coords, strict=True)}
    where.setdefault(state.final.label, (0.0, 0.0))  # final/ repeats the last step: the origin
    for label, (x, y) in where.items():
        for row in state.rows["trajectory"]:
            if row["checkpoint"] == label:
                row.update(x=float(x), y=float(y), **variance)


def _layers(state: JobState, cfg: LayersSection) -> None:
    """6. Layer invariance: relative change of each part, and its initial-to-final 1-D curve."""
    theta0 = state.points[0]
    parts = layer_parts(state.theta1)
    alphas = line_alphas(0.0, 1.0, cfg.points)
    start = time.perf_counter()
    for part in parts:
        columns = {"part": part.name, "layer": part.layer, "checkpoint": "final", **state.common}
        change = relative_change(theta0, state.theta1, part)
        state.rows["layers"].append(
            {"split": pd.NA, "metric": "relative_change", "value": change, **columns}
        )
        values = layer_curve(state.live_model(), theta0, part, alphas, state.objectives)
        for alpha, v in zip(alphas, values, strict=True):
            state.rows["layers"] += _rows(v, state.splits, alpha=float(alpha), **columns)
    if state.dist.is_main:
        state.ctx.console.print(
            f"{state.job}: {len(parts)} layer curves of {len(alphas)} points in "
            f"{time.perf_counter() - start:.1f} s"
        )


def _loss_rise(state: JobState, cfg: SharpnessSection) -> None:
    """5a. Mean, spread and max loss rise at filter-normalised radii around the final weights."""
    model = state.live_model()
    base = (
        state.center
        if state.center is not None
        else evaluate_points(model, [], np.zeros((1, 0)), state.objectives)[0]
    )
    rises = loss_increase_at_radius(
        model,
        state.objectives,
        cfg.radii,
        n_directions=cfg.directions,
        seed=state.seed + 1,
        ignore=state.ignore,
        base=base,
        process_index=state.dist.index,
        num_processes=state.dist.count,
        gather=state.dist.gather,
    )
    for split, by_radius in rises.items():
        for radius, rise in by_radius.items():
            for metric, value in (
                ("loss_increase_mean", rise.mean()),
                ("loss_increase_std", rise.std(ddof=1) if rise.size > 1 else 0.0),
                ("loss_increase_max", rise.max()),
            ):
                state.rows["sharpness"].append(
                    {
                        "split": split,
                        "metric": metric,
                        "value": float(value),
                        "radius": radius,
                        "n_directions": cfg.directions,
                        "checkpoint": "final",
                        **state.common,
                    }
                )


def _hessian(state: JobState, cfg: SharpnessSection) -> None:
    """5b. Top Hessian eigenvalue on the train batches (main process only)."""
    split = "train" if "train" in state.objectives else state.splits[0]
    if cfg.hessian_iterations <= 0 or not state.dist.is_main:
        return
    eigen = hessian_top_eigenvalue(
        state.live_model(),
        state.objectives[split],
        iterations=cfg.hessian_iterations,
        tolerance=cfg.hessian_tolerance,
        seed=state.seed,
    )
    state.rows["sharpness"].append(
        {
            "split": split,
            "metric": "hessian_top_eigenvalue",
            "value": eigen.value,
            "iterations": eigen.iterations,
            "converged": eigen.converged,
            # Largest-magnitude eigenvalue: negative means the point is no minimum.
            "dominant_eigenvalue": eigen.dominant,
            "checkpoint": "final",
            **state.common,
        }
    )


def _sharpness(state: JobState, cfg: SharpnessSection) -> None:
    """5. Sharpness: loss rise at radii, then the top Hessian eigenvalue."""
    start = time.perf_counter()
    _loss_rise(state, cfg)
    _hessian(state, cfg)
    if state.dist.is_main:
        state.ctx.console.print(f"{state.job}: sharpness in {time.perf_counter() - start:.1f} s")


def analyse_job(
    ctx: RunContext,
    section: LandscapeSection,
    job: str,
    source_run: Path,
    dist: Distributed,
    seed: int,
) -> dict[str, list[dict]]:
    """All landscape rows of one job (the same on every process)."""
    state = _open_job(ctx, section, job, source_run, dist, seed)
    _score_trajectory(state)
    if section.line is not None:
        _line(state, section.line)
    if section.random_plane is not None:
        _random_plane(state, section.random_plane)
    if section.pca_plane is not None:
        _pca_plane(state, section.pca_plane)
    if section.layers is not None:
        _layers(state, section.layers)
    state.points = []  # the trajectory's parameters are no longer needed
    if section.sharpness is not None:
        _sharpness(state, section.sharpness)
    return state.rows


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
