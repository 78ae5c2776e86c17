"""Seeded mutation fuzzing of the shipped study files against the validation step.

Every mutation changes one thing in one shipped study (a value replaced by an awkward one, a key
dropped, renamed or added, a list emptied or doubled) and is validated in-process, the way
``probe run`` validates before any model loads. Outcomes:

- ``accepted``: validation passed; the study must then be *truly* valid: :func:`garbage` finds no
  non-finite float, negative or huge seed, unsafe name, or bound the model cannot meet.
- ``clean``: a :class:`probe.errors.ProbeError` whose message is one line of at most 300 chars
  (or, when the mutation broke several things at once, lists each problem in at most 300).
- ``messy``: a ProbeError with a longer or multi-line message.
- ``traceback``: any other exception (a crash in validation, or later: a wrong number).
- ``hang``: validation took longer than ``HANG_SECONDS``.

Run as a script to print the counts: ``python tests/study_fuzz.py [N_PER_STUDY] [SEED]``.
"""

from __future__ import annotations

import copy
import math
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from probe.data.examples import write_own_data_examples

REPO = Path(os.environ.get("PROBE_FUZZ_REPO") or Path(__file__).resolve().parents[1])
STUDIES = sorted((REPO / "studies").glob("*.yaml"))
MAX_MESSAGE = 300
HANG_SECONDS = 10

# Values a careless (or hostile) user might put anywhere.
AWKWARD: list[Any] = [
    -1, 0, 1, 2**32, 2**63, -(2**31), 3.5, 1e308, -1e-308,
    math.inf, -math.inf, math.nan, "", ".", "..", "../outside", "a/b", "x" * 300, "firts",
    None, True, False, [], {}, [0, 0], [-1], [math.inf], {"unknown": 1}, "1e3", "cuda", "mps",
    "trained:nojob", "scratch:", "run:/nonexistent", 10**6, [10**6], "-1",
]  # fmt: skip


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (tuple of keys/indices) to a value inside ``node``, the root excluded."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


def _parent(root: Any, path: tuple) -> Any:
    for key in path[:-1]:
        root = root[key]
    return root


def mutate(study: dict, rng: random.Random) -> tuple[dict, str]:
    """One mutation of a deep copy of ``study``, and what it did (for failure messages)."""
    out = copy.deepcopy(study)
    paths = list(_paths(out))
    path = rng.choice(paths)
    parent, key = _parent(out, path), path[-1]
    kind = rng.choice(["replace", "replace", "replace", "drop", "rename", "add", "list", "nudge"])
    where = ".".join(map(str, path))
    if kind == "drop":
        del parent[key]
        return out, f"drop {where}"
    if kind == "rename" and isinstance(parent, dict):
        parent[f"{key}x"] = parent.pop(key)
        return out, f"rename {where}"
    if kind == "add" and isinstance(parent[key], dict):
        parent[key][rng.choice(["extra", "seed", "name", "layers"])] = rng.choice(AWKWARD)
        return out, f"add a key under {where}"
    if kind == "list" and isinstance(parent[key], list):
        parent[key] = rng.choice([[], parent[key] * 2, parent[key][::-1]])
        return out, f"reshape list {where}"
    number = isinstance(parent[key], int | float) and not isinstance(parent[key], bool)
    if kind == "nudge" and number:
        parent[key] = rng.choice([-parent[key], parent[key] * 10**9, 0, parent[key] + 0.5])
        return out, f"nudge {where}"
    value = rng.choice(AWKWARD)
    parent[key] = value
    return out, f"set {where} = {value!r:.40}"


def _bomb(levels: int, width: int) -> str:
    """An alias bomb: each anchor repeats the previous one ``width`` times."""
    lines = [f"b0: &b0 [{', '.join(['x'] * width)}]"]
    lines += [f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines)


def mutate_text(text: str, rng: random.Random) -> tuple[bytes, str]:
    """A mutation of the file's text: what YAML itself allows (aliases, nesting, duplicates)."""
    lines = text.splitlines()
    top = [line for line in lines if line and line[0].isalpha() and ":" in line]
    kind = rng.choice(["duplicate", "deep", "bomb", "bytes"])
    if kind == "duplicate":  # PyYAML keeps the last value silently
        return (text + "\n" + rng.choice(top) + "\n").encode(), "a top-level key twice"
    if kind == "deep":
        key = rng.choice(top).split(":")[0]
        body = "\n".join(line for line in lines if not line.startswith(f"{key}:"))
        return f"{body}\n{key}: {'[' * 2000}1{']' * 2000}\n".encode(), f"{key} nested 2000 deep"
    if kind == "bomb":
        key = rng.choice(top).split(":")[0]
        body = "\n".join(line for line in lines if not line.startswith(f"{key}:"))
        return f"{_bomb(6, 6)}\n{body}\n{key}: *b5\n".encode(), f"{key} = a 6x6 alias bomb"
    at = rng.randrange(len(text) + 1)
    return text[:at].encode() + b"\xff\xfe" + text[at:].encode(), "bytes that are not UTF-8"


def mutations(n_per_study: int, seed: int) -> Iterator[tuple[str, bytes, str]]:
    """``(study file name, mutated file, description)``, ``n_per_study`` of each shipped study;
    one in ten changes the YAML text itself, the others one value of the parsed study."""
    rng = random.Random(seed)
    for path in STUDIES:
        text = path.read_text()
        original = yaml.safe_load(text)
        for _ in range(n_per_study):
            if rng.random() < 0.1:
                yield path.name, *mutate_text(text, rng)
            else:
                study, what = mutate(original, rng)
                yield path.name, yaml.safe_dump(study, sort_keys=False).encode(), what


# --------------------------------------------------------------------------- the truth


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}.{index}")
    else:
        yield path, node


def _safe_name(name: Any) -> bool:
    text = str(name)
    return bool(text) and text not in (".", "..") and "/" not in text and len(text) <= 255


def garbage(study: Any) -> list[str]:
    """Why an accepted study is not truly valid (empty when it is).

    Independent of the validator: reads the validated object's plain dump and the model configs.
    """
    data = study.model_dump(mode="python")
    leaves = list(_walk(data))
    problems = [f"{p} = {v!r}" for p, v in leaves if isinstance(v, float) and not math.isfinite(v)]
    seeds = [(p, v) for p, v in leaves if p.split(".")[-1] == "seed" or ".seeds." in f"{p}."]
    problems += [f"{p} = {v}" for p, v in seeds if isinstance(v, int) and not 0 <= v < 2**32]
    problems += [f"name {data['name']!r}"] if not _safe_name(data["name"]) else []
    train = data.get("train") or {}
    for job in train.get("jobs", []) if isinstance(train, dict) else []:
        if not _safe_name(job.get("name")):
            problems.append(f"train job name {job.get('name')!r}")
    if not data.get("models"):
        problems.append("no models")
    return problems + _model_bounds(data)


def _model_bounds(data: dict) -> list[str]:
    """Bounds each model's config sets (read here with the spec resolver, never the validator)."""
    from probe.errors import ProbeError
    from probe.model_spec import ModelSpec, read_config, resolve_model

    problems = []
    capture, probe, embeddings = data["capture"], data.get("probe"), data.get("embeddings")
    for entry in data["models"]:
        try:
            if ModelSpec.parse(entry["spec"]).trained_job is not None:
                continue
            config = read_config(resolve_model(entry["spec"]))
        except ProbeError:
            problems.append(f"model {entry['spec']!r} cannot be resolved")
            continue
        n_layers, width = config["num_hidden_layers"], config["hidden_size"]
        positions = config["max_position_embeddings"]
        layers = capture["layers"]
        if probe and layers != "all" and (max(layers, default=0) > n_layers or probe["mix"]):
            problems.append(f"capture.layers {layers} with {n_layers} layers, mix {probe['mix']}")
        if probe and (capture["max_length"] or 0) > positions:
            problems.append(f"capture.max_length {capture['max_length']} > {positions}")
        if embeddings and max(embeddings["isotropy_top_k"], default=0) > width:
            problems.append(f"isotropy_top_k {embeddings['isotropy_top_k']} > {width}")
    return problems


# --------------------------------------------------------------------------- running


class HangError(Exception):
    """Validation ran past its deadline."""


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    def fire(signum: int, frame: object) -> None:
        raise HangError

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def validator() -> Callable[[Path], Any]:
    """The validation step of the code under test (today's, or an older layout's)."""
    try:
        from probe.validate import validate_study

        return validate_study
    except ImportError:  # before the stage registry: load, then the runner's checks
        from probe.runner import check_study
        from probe.study import load_study

        def validate(path: Path) -> Any:
            study = load_study(path)
            check_study(study)
            return study

        return validate


def classify(validate: Callable[[Path], Any], path: Path) -> tuple[str, str]:
    """``(outcome, detail)`` of validating the study file at ``path``."""
    from probe.errors import ProbeError

    try:
        with _deadline(HANG_SECONDS):
            study = validate(path)
    except HangError:
        return "hang", f"over {HANG_SECONDS} s"
    except ProbeError as exc:
        message = f"error: {exc}"
        # One mistake, one short line. A mutation that breaks several things (emptying
        # save_steps breaks every model that names a step) gets every problem at once, by
        # design of the one validation step: then each of them must be short.
        problems = getattr(exc, "problems", None) or [str(exc)]
        too_long = len(message) > MAX_MESSAGE and (
            len(problems) == 1 or any(len(p) > MAX_MESSAGE for p in problems)
        )
        if "\n" in message or too_long:
            return "messy", message[:400]
        return "clean", message
    except Exception as exc:  # the point is to count them
        return "traceback", f"{type(exc).__name__}: {str(exc)[:200]}"
    problems = garbage(study)
    return ("garbage", "; ".join(problems)) if problems else ("accepted", "")


def fuzz(n_per_study: int, seed: int = 0) -> tuple[Counter, list[tuple[str, str, str, str]]]:
    """Counts of outcomes and the non-clean cases ``(study, mutation, outcome, detail)``."""
    offline = {key: os.environ.get(key) for key in ("PROBE_OFFLINE", "HF_HUB_OFFLINE")}
    os.environ.update(dict.fromkeys(offline, "1"))  # a mutated name must not start a download
    validate = validator()
    counts: Counter = Counter()
    bad = []
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # messages name `study.yaml`, as a user's would
        # Studies name their own files relative to the working directory (own_data.yaml's).
        write_own_data_examples(Path("examples") / "own_data")
        try:
            for name, content, what in mutations(n_per_study, seed):
                path = Path("study.yaml")
                path.write_bytes(content)
                outcome, detail = classify(validate, path)
                counts[outcome] += 1
                if outcome not in ("accepted", "clean"):
                    bad.append((name, what, outcome, detail))
        finally:
            os.chdir(cwd)
            for key, value in offline.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return counts, bad


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    start = time.perf_counter()
    counts, bad = fuzz(n, seed)
    seconds = time.perf_counter() - start
    total = sum(counts.values())
    print(f"{total} mutations of {len(STUDIES)} studies in {seconds:.1f} s: {dict(counts)}")
    for row in bad:
        print(" | ".join(row))
