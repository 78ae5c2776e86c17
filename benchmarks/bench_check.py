"""Benchmark: how long `probe check` takes on a study with three problems (target: under 2 s).

The study probes the German fixture treebank plus two broken tasks (a folder that does not exist,
a TSV task naming a column the file lacks) and gets one bad override (``--set
probe.limit.trian=5``); `probe check` must report all three and exit with status 2. Each repeat
is a fresh ``python -m probe check`` process (wall time includes interpreter start-up), so the
number is what a user waits for. The machine may be shared: the table gives wall and CPU time.

Usage::

    .venv/bin/python benchmarks/bench_check.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from probe.data.examples import write_own_data_examples

REPO = Path(__file__).resolve().parents[1]


def _study(folder: Path) -> Path:
    own = write_own_data_examples(folder / "own_data")
    study = {
        "name": "bench_check",
        "models": ["embedded:minilm"],
        "probe": {
            "tasks": [
                {"name": "upos_de", "format": "conllu", "path": str(own / "ud_german_tiny"),
                 "label": "upos"},
                {"name": "upos_fr", "format": "conllu", "path": str(folder / "UD_French-GSD"),
                 "label": "upos"},
                {"name": "number", "format": "tsv", "path": str(own / "subject_number.tsv"),
                 "text": "sentense", "label": "subject_number"},
            ]
        },
    }  # fmt: skip
    path = folder / "broken.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        path = _study(Path(tmp))
        walls, cpus = [], []
        for _ in range(args.repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "probe", "check", str(path), "--set",
                 "probe.limit.trian=5"],
                capture_output=True, text=True, env=env, cwd=REPO,
            )  # fmt: skip
            walls.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            problems = [x for x in result.stderr.splitlines() if x.startswith("problem: ")]
            if result.returncode != 2 or len(problems) != 3:
                sys.exit(f"unexpected result (exit {result.returncode}):\n{result.stderr}")
    load = os.getloadavg()[0]
    print(f"probe check, 3 problems reported, exit 2; {args.repeats} runs, load average {load:.1f}")
    print(f"{'':>8} {'median':>8} {'max':>8}")
    print(f"{'wall s':>8} {statistics.median(walls):8.2f} {max(walls):8.2f}")
    print(f"{'cpu s':>8} {statistics.median(cpus):8.2f} {max(cpus):8.2f}")


if __name__ == "__main__":
    main()
