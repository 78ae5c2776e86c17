"""Checks of the ``embeddings`` section that need model configs or data files (no model loads).

Run by :func:`probe.validate.check_study` with every other check of the study; each problem is
returned, not raised, so the user sees all of them at once.
"""

from __future__ import annotations

from probe.embeddings.config import FIT_CORPORA
from probe.embeddings.pooling_spec import resolve_pooling
from probe.embeddings.sts import STS_TASKS
from probe.embeddings.whitening import parse_variant
from probe.errors import ProbeError
from probe.model_spec import ModelSpec, model_shape
from probe.study import Study

__all__ = ["check_embeddings"]


def check_embeddings(study: Study) -> list[str]:
    """Layers and ``whiten-k`` fit every model; the data files of every task and corpus exist."""
    from probe.data import load_pair_file
    from probe.data.check import check_split_readable

    section = study.embeddings
    assert section is not None
    problems: list[str] = []
    for entry in study.models:
        spec = ModelSpec.parse(entry.spec)
        if spec.trained_job is not None:
            continue  # produced by this run's train stage; checked when it is loaded
        try:
            n_layers, d_model = model_shape(entry.spec)
        except ProbeError:
            continue  # the model check reports an unresolvable spec once, not once per stage
        for spec_text in section.poolings:
            try:
                resolve_pooling(spec_text, n_layers)
            except ValueError as exc:
                problems.append(f"embeddings.poolings: {exc} (model {entry.label})")
        for name in section.whitening:
            _, k = parse_variant(name)
            if k is not None and k > d_model:
                problems.append(
                    f"embeddings.whitening: {name!r} keeps {k} dimensions but model "
                    f"{entry.label} has {d_model}; use whiten-<k> with k <= {d_model}"
                )
    builtin = [t for t in section.tasks if isinstance(t, str)]
    for index, task in enumerate(section.tasks):
        if isinstance(task, str):
            continue
        try:
            load_pair_file(task, seed=study.seed)  # parses every file: bad lines name file:line
        except ProbeError as exc:
            problems.append(f"embeddings.tasks.{index} ({task.name}): {exc}")
    needed = {(STS_TASKS[t], s) for t in builtin for s in section.splits}
    if "target" in section.fit_on:
        needed |= {(STS_TASKS[t], s) for t in builtin for s in ("train", "dev", "test")}
    for corpus in section.fit_on:
        if corpus != "target":
            name, _, split = corpus.partition(":")
            needed.add((FIT_CORPORA[name][0], split))
    for dataset, split in sorted(needed):
        try:
            check_split_readable(dataset, split)  # missing, not UTF-8 (FILE:LINE), empty
        except ProbeError as exc:
            problems.append(f"embeddings: {exc}")
    return problems
