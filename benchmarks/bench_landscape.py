"""Grid points per second and peak memory: probe's landscape vs ``loss_landscapes.random_plane``.

Both evaluate the same MiniLM SST-2 classifier on the same fixed, pre-tokenised batches (the
library through :class:`probe.landscape.reference.ObjectiveMetric`) over a ``steps x steps``
plane of two random directions. Each method runs in a fresh subprocess so peak memory is its
own: CPU peak is the highest resident set (sampled every 2 ms) above the one with the model and
batches loaded; CUDA peak is ``torch.cuda.max_memory_allocated`` above the same baseline.

``loss_landscapes`` cannot filter-normalise MiniLM (``ZeroDivisionError`` on its all-zero pooler
and classifier biases), so it is timed twice: with ``normalization="layer"`` on MiniLM as is,
and with ``"filter"`` on a copy whose exact-zero 1-D parameters are nudged to 1e-3. It needs
``deepcopy_model=True`` to leave the model where it was.

    python benchmarks/bench_landscape.py                 # CPU, 5x5 grid, 64 examples
    python benchmarks/bench_landscape.py --device cuda --steps 21 --examples 1024
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time

METHODS = ("probe", "loss_landscapes_layer", "loss_landscapes_filter")


def _rss_mb() -> float:
    """Current resident set size (Linux /proc), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _PeakRSS(threading.Thread):
    """Samples the resident set every 2 ms: ru_maxrss would include the model-loading peak."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.base = _rss_mb()
        self.peak = self.base
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.002):
            self.peak = max(self.peak, _rss_mb())

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return max(self.peak, _rss_mb()) - self.base


def _measure(method: str, args: argparse.Namespace) -> dict:
    """Run one method in this process; returns timings and peak memory."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification

    from probe.landscape.directions import model_parameters, random_directions
    from probe.landscape.objective import sst2_objective
    from probe.landscape.surface import centered_grid, evaluate_points, plane_points
    from probe.models import load_model, load_tokenizer, resolve_model
    from probe.runtime import autocast_dtype

    torch.manual_seed(0)
    device = torch.device(args.device)
    source = resolve_model("embedded:minilm")
    model = load_model(source, AutoModelForSequenceClassification, num_labels=2).to(device).eval()
    objective = sst2_objective(
        load_tokenizer(source),
        "train",
        args.examples,
        batch_size=args.batch_size,
        max_length=64,
        device=device,
        autocast=autocast_dtype(device),
    )
    objective.evaluate(model)  # warm-up: allocator, kernels, thread pools
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        sampler = _PeakRSS()
        sampler.start()

    start, cpu_start = time.perf_counter(), time.process_time()
    if method == "probe":
        directions = random_directions(model_parameters(model, copy=False), 2, seed=0)
        grid = centered_grid(1.0, args.steps)
        first_point, cpu_first = time.perf_counter(), time.process_time()
        values = evaluate_points(model, directions, plane_points(grid, grid), {"train": objective})
        surface = values[:, 0, 0]
    else:
        import loss_landscapes

        from probe.landscape.reference import ObjectiveMetric

        class Timed(ObjectiveMetric):
            """Notes when the first grid point starts: what comes before is setup."""

            started: float | None = None

            cpu_started: float | None = None

            def __call__(self, model_wrapper: object) -> float:
                self.started = self.started or time.perf_counter()
                self.cpu_started = self.cpu_started or time.process_time()
                return super().__call__(model_wrapper)

        normalization = "layer"
        if method == "loss_landscapes_filter":
            normalization = "filter"
            with torch.no_grad():
                for p in model.parameters():
                    if p.dim() == 1:
                        p[p == 0] = 1e-3  # its filter normalisation divides by these
        metric = Timed(objective)
        surface = loss_landscapes.random_plane(
            model,
            metric,
            distance=0.5,  # = span 1 in filter-normalised units (its distance is inverse)
            steps=args.steps,
            normalization=normalization,
            deepcopy_model=True,
        )
        first_point = metric.started or start
        cpu_first = metric.cpu_started or cpu_start
    if cuda:
        torch.cuda.synchronize()
    total = time.perf_counter() - start
    cpu_total = time.process_time() - cpu_start
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else sampler.stop()
    points = args.steps**2
    setup = first_point - start
    return {
        "method": method,
        "points": points,
        "setup_s": setup,
        "total_s": total,
        "points_per_s": points / total,
        "grid_points_per_s": points / (total - setup),
        "cpu_s": cpu_total,
        "grid_points_per_cpu_s": points / (cpu_total - (cpu_first - cpu_start)),
        "peak_extra_mb": peak,
        "finite": bool(np.isfinite(np.asarray(surface)).all()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5, help="grid is steps x steps (odd)")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--only", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.only:
        print(json.dumps(_measure(args.only, args)))
        return

    rows = []
    for method in METHODS:
        command = [sys.executable, __file__, "--only", method, "--device", args.device,
                   "--steps", str(args.steps), "--examples", str(args.examples),
                   "--batch-size", str(args.batch_size)]  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    import torch

    threads = torch.get_num_threads()
    print(f"device {args.device}, {args.steps}x{args.steps} grid, {args.examples} SST-2 train "
          f"examples, batch {args.batch_size}, torch threads {threads}")  # fmt: skip
    header = (f"{'method':<24}{'setup s':>9}{'total s':>9}{'points/s':>10}"
              f"{'grid pts/s':>12}{'cpu s':>8}{'grid pts/cpu-s':>16}{'peak +MB':>10}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['method']:<24}{r['setup_s']:>9.2f}{r['total_s']:>9.2f}"
              f"{r['points_per_s']:>10.2f}{r['grid_points_per_s']:>12.2f}{r['cpu_s']:>8.1f}"
              f"{r['grid_points_per_cpu_s']:>16.2f}{r['peak_extra_mb']:>10.0f}")  # fmt: skip
    print("points/s counts the setup (directions, normalisation, model copy); grid pts/s not;")
    print("cpu columns use process CPU time (steadier than wall time on a shared machine)")
    for r in rows[1:]:
        print(f"probe / {r['method']}: {rows[0]['points_per_s'] / r['points_per_s']:.2f}x "
              f"points/s overall, {rows[0]['grid_points_per_s'] / r['grid_points_per_s']:.2f}x "
              "on the grid alone")  # fmt: skip


if __name__ == "__main__":
    main()
