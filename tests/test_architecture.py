"""How the package hangs together: one stage registry, no import cycles, torch-free readers,
and one validation step that reports every problem of a study at once."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from probe.errors import StudyError
from probe.stages import STAGE_NAMES, STAGES, figure_groups, load_function, stage_of_table
from probe.study import Study, parse_study
from probe.validate import validate_study

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- import graph


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """Package modules imported when ``path`` is imported (module level, not TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path.parent)
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                if base in modules:
                    found.add(base)
                for alias in node.names:
                    if f"{base}.{alias.name}" in modules:
                        found.add(f"{base}.{alias.name}")

    visit(tree.body)
    return found


def import_graph() -> dict[str, set[str]]:
    files = [*(REPO / "probe").rglob("*.py")]
    modules = {_module_name(f): f for f in files}
    return {name: _top_level_imports(path, set(modules)) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_package_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert "probe.study" in graph and "probe.stages" in graph["probe.study"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_section_schemas_are_leaves_importing_only_schemas() -> None:
    graph = import_graph()
    allowed = {"probe._schema", "probe.errors", "probe.embeddings.pooling_spec",
               "probe.embeddings.whitening", "probe.training.config",
               "probe.data.sources"}  # fmt: skip
    for entry in STAGES:
        module = entry.section.__module__
        assert graph[module] <= allowed, (module, graph[module] - allowed)


# --------------------------------------------------------------------------- torch-free readers

_NO_TORCH = """
import sys
sys.path.insert(0, {dashboard!r})
{imports}
heavy = sorted(m for m in ("torch", "transformers", "sklearn", "accelerate") if m in sys.modules)
assert not heavy, heavy
"""


@pytest.mark.parametrize(
    "imports",
    [
        "import probe.study; probe.study.parse_study({'name': 'x', 'probe': {'tasks': ['upos']},"
        " 'embeddings': {}, 'landscape': {}, 'train': [{'name': 'a', 'kind': 'finetune',"
        " 'model': 'embedded:minilm', 'task': 'sst2', 'steps': 1}]})",
        "import probe.runs",
        "import probe.export",
        "import probe.stages",
        "import probe.figures.groups, probe.figures.probing, probe.figures.pipeline,"
        " probe.figures.embeddings, probe.figures.landscape, probe.figures.training",
        "import shared",  # the dashboard's module every page imports
    ],
    ids=["study", "runs", "export", "stages", "figures", "dashboard"],
)
def test_readers_do_not_import_torch(imports: str) -> None:
    code = _NO_TORCH.format(dashboard=str(REPO / "dashboard"), imports=imports)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]


# --------------------------------------------------------------------------- the registry


def test_registry_names_importable_entries_checks_and_builders() -> None:
    for entry in STAGES:
        assert callable(load_function(entry.run)), entry.run
        if entry.check is not None:
            assert callable(load_function(entry.check)), entry.check
        for group in entry.figures:
            assert group.stage == entry.name
            assert set(group.tables) <= set(entry.table_names), group.key
            assert all(stage_of_table(t) for t in group.optional), group.key
            assert callable(load_function(group.build)), group.build
    keys = [group.key for group in figure_groups()]
    assert len(keys) == len(set(keys))


def test_study_has_one_optional_section_per_registered_stage() -> None:
    for entry in STAGES:
        field = Study.model_fields[entry.name]
        assert field.default is None and entry.section in field.annotation.__args__
    study = parse_study({"name": "x", "probe": {"tasks": ["upos"]}, "landscape": {}})
    assert study.stages == ["probe", "landscape"]
    assert list(STAGE_NAMES) == [s.name for s in STAGES]


def test_every_table_name_is_registered_once() -> None:
    names = [t.name for s in STAGES for t in s.tables]
    assert len(names) == len(set(names))
    for entry in STAGES:  # tables always written come first, optional ones after them
        always = [t.setting is None for t in entry.tables]
        assert always == sorted(always, reverse=True), entry.name


# --------------------------------------------------------------------------- validation


def test_three_mistakes_in_three_sections_are_reported_in_one_error(tmp_path: Path) -> None:
    study = tmp_path / "three.yaml"
    study.write_text(
        """
name: three
probe: {tasks: [upos, nosuchtask]}             # unknown task (a registry check)
embeddings: {whitening: [raw, whiten-99999]}   # more dimensions than the model (a model check)
landscape: {line: {points: 1}}                 # schema: at least 2 points
""",
        encoding="utf-8",
    )
    with pytest.raises(StudyError) as info:
        validate_study(study)
    message = str(info.value)
    assert "\n" not in message
    assert "landscape.line.points" in message
    assert "probe.tasks.1: unknown task 'nosuchtask'" in message
    assert "'whiten-99999' keeps 99999 dimensions" in message


def test_cli_reports_all_three_with_exit_code_2(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    study = tmp_path / "three.yaml"
    study.write_text(
        "name: three\nprobe: {tasks: [nosuchtask]}\nembeddings: {tasks: [stsb], whitening: "
        "[whiten-99999]}\nlandscape: {examples: {}}\n",
        encoding="utf-8",
    )
    done = run_cli("run", str(study), "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2, done.stdout + done.stderr
    output = done.stdout + done.stderr
    for needle in ("nosuchtask", "whiten-99999", "landscape.examples"):
        assert needle in output, (needle, output)
    assert not (tmp_path / "runs").exists()  # nothing created before validation passed


# --------------------------------------------------------------------------- table schemas


def test_every_registered_table_has_a_pinned_schema_and_no_other() -> None:
    from probe.schemas import SCHEMAS

    assert sorted(SCHEMAS) == sorted(t.name for s in STAGES for t in s.tables)
    for table in SCHEMAS.values():
        assert len(table.names) == len(set(table.names)), table.name
        assert table.probe and table.control  # says what the two columns mean in this table


def test_row_helper_and_writer_refuse_a_column_the_schema_does_not_list() -> None:
    from probe.schemas import SCHEMAS

    with pytest.raises(ValueError, match=r"no column 'ci_lo' \(did you mean 'ci_low'"):
        SCHEMAS["probe"].row(model="m", ci_lo=0.1)
    with pytest.raises(ValueError, match="table embeddings has no column 'control_variant'"):
        SCHEMAS["embeddings"].frame([{"model": "m", "value": 1.0, "control_variant": "raw"}])


def test_a_version_1_embeddings_table_is_read_in_version_2_columns(tmp_path: Path) -> None:
    import json

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from probe.results import read_table

    old = pd.DataFrame(
        {"study": ["s"], "model": ["m"], "probe": ["first_last_avg"], "control": ["whiten"],
         "pooling": ["mean@1+6"], "fit_on": ["target"], "metric": ["spearman"], "value": [70.5]}
    )  # fmt: skip
    table = pa.Table.from_pandas(old, preserve_index=False)
    meta = {**table.schema.metadata, b"probe": json.dumps({"schema_version": 1}).encode()}
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "embeddings.parquet")
    new = read_table(tmp_path / "embeddings.parquet")
    row = new.iloc[0]
    assert (row.pooling, row.pooling_spec, row.whitening) == (
        "first_last_avg",
        "mean@1+6",
        "whiten",
    )
    assert pd.isna(row.probe) and pd.isna(row.control) and row.value == 70.5


# --------------------------------------------------------------------------- runtime rules


def test_runtime_rules_keep_cpu_in_fp32_and_seed_every_generator() -> None:
    import random

    import numpy as np
    import torch

    from probe.runtime import autocast_dtype, mixed_precision, resolve_device, seed_everything

    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu
    assert all(autocast_dtype(cpu, p) is None for p in ("auto", "bf16", "fp16", "fp32"))
    assert mixed_precision("bf16", cpu) == "no"
    draws = []
    for _ in range(2):
        seed_everything(3)
        draws.append((random.random(), np.random.rand(), torch.rand(1).item()))
    assert draws[0] == draws[1]
