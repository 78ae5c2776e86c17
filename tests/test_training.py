"""Training stage: data, objectives, loop, checkpoints and resume (tiny models, CPU, offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from transformers import AutoModel, BertConfig, BertForSequenceClassification

from probe.errors import StudyError
from probe.models import resolve_model
from probe.runner import stage_figures
from probe.training.checkpoint import OPTIMIZER_FILE, STATE_FILE, find_resume_point
from probe.training.config import PretrainJob
from probe.training.finetune import freeze_lowest_layers
from probe.training.loop import train_job
from probe.training.optim import param_groups
from probe.training.pretrain import build_pretrain
from probe.validate import check_study

WORDS = {
    "animals": ["cat", "dog", "horse", "bird", "fish", "lion", "tiger", "mouse", "cow", "sheep"],
    "cities": [
        "paris",
        "london",
        "berlin",
        "rome",
        "madrid",
        "vienna",
        "prague",
        "oslo",
        "lisbon",
        "dublin",
    ],
    "food": ["bread", "cheese", "apple", "rice", "soup", "pasta", "salad", "cake", "pear", "plum"],
}
VERBS = ["sees", "likes", "finds", "meets", "follows", "visits"]


def write_corpus(path: Path, n_docs: int = 24, seed: int = 0) -> Path:
    """Documents of topical sentences separated by blank lines (the plain-lines layout)."""
    rng = np.random.default_rng(seed)
    topics = list(WORDS)
    lines = []
    for d in range(n_docs):
        words = WORDS[topics[d % len(topics)]]
        for _ in range(int(rng.integers(6, 12))):
            a, b = rng.choice(words, 2, replace=False)
            lines.append(f"the {a} {rng.choice(VERBS)} the {b} .")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_pretrain(corpus: Path, **overrides) -> PretrainJob:
    values = {
        "name": "tiny",
        "kind": "pretrain",
        "corpus": str(corpus),
        "steps": 6,
        "batch_size": 8,
        "lr": 1e-3,
        "max_length": 32,
        "d_model": 32,
        "n_layers": 2,
        "n_heads": 2,
        "d_ff": 64,
        "max_position_embeddings": 64,
        "vocab_size": 100,
        "save_steps": [3],
        "eval_examples": 16,
        "log_every": 2,
    }
    values.update(overrides)
    return PretrainJob(**values)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "docs.txt")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return AutoModel.from_pretrained(folder).state_dict()


def _curves(history: list[dict]) -> list[tuple]:
    return [
        (r["step"], r["split"], r["metric"], r["value"])
        for r in history
        if r["metric"] not in ("tokens_per_s", "train_seconds")  # timings differ
    ]


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models are latency-bound: two OpenMP threads spinning on a shared 2-core machine make
    # each step 10x slower, one thread is fastest (and the results are the same).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_sst2(folder: Path, n_train: int = 240, n_dev: int = 80, seed: int = 0) -> Path:
    """A fake ``sst2_glue`` dataset whose label is the sentiment word in each sentence."""
    rng = np.random.default_rng(seed)
    filler = [
        "the",
        "a",
        "movie",
        "film",
        "plot",
        "actors",
        "story",
        "was",
        "is",
        "very",
        "quite",
        "rather",
    ]
    good, bad = ["good", "great", "fine", "nice"], ["bad", "awful", "poor", "dull"]
    root = folder / "sst2_glue"
    root.mkdir(parents=True)
    for name, n in (("train.tsv", n_train), ("dev.tsv", n_dev)):
        lines = ["sentence\tlabel"]
        for _ in range(n):
            label = int(rng.integers(2))
            words = list(rng.choice(filler, int(rng.integers(3, 7))))
            words.insert(int(rng.integers(len(words) + 1)), rng.choice(good if label else bad))
            lines.append(f"{' '.join(words)}\t{label}")
        (root / name).write_text("\n".join(lines) + "\n")
    return folder


# --------------------------------------------------------------------------- data


def test_pairs_are_half_true_continuations_and_half_from_other_documents(corpus: Path) -> None:
    objective = build_pretrain(tiny_pretrain(corpus, max_length=64), seed=0)
    pairs = objective.pairs
    labels = []
    for epoch in range(4):
        for index in range(len(pairs)):
            inst = pairs(epoch, index)
            d, first, end = pairs.chunks[index]
            own = np.concatenate(pairs.docs[d][first:end])
            labels.append(inst.is_random_next)
            assert len(inst.a) >= 1 and len(inst.b) >= 1
            assert len(inst.a) + len(inst.b) <= 64 - 3
            joined = np.concatenate([inst.a, inst.b])
            if not inst.is_random_next:  # A then B is a contiguous stretch of the chunk
                assert any(
                    np.array_equal(joined, own[k : k + len(joined)])
                    for k in range(len(own) - len(joined) + 1)
                )
    assert 0.4 < np.mean(labels) < 0.6
    # the same (epoch, chunk) always gives the same pair; another epoch usually another one
    assert np.array_equal(pairs(1, 5).a, pairs(1, 5).a)
    assert any(not np.array_equal(pairs(0, i).a, pairs(1, i).a) for i in range(len(pairs)))


def test_learned_wordpiece_vocabulary_is_deterministic_and_saved_tokenizer_matches(
    corpus: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    job = tiny_pretrain(corpus)
    first, second = build_pretrain(job, seed=0), build_pretrain(job, seed=1)
    assert first.tokenizer.get_vocab() == second.tokenizer.get_vocab()
    first.tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "the cat sees the dog ."
    assert loaded(text)["input_ids"] == first.tokenizer(text)["input_ids"]
    assert loaded.mask_token_id == first.tokenizer.mask_token_id


def test_unigram_entropy_is_the_baseline_an_untrained_model_starts_above(corpus: Path) -> None:
    objective = build_pretrain(tiny_pretrain(corpus), seed=0)
    ids = np.concatenate([s for d in objective.pairs.docs for s in d])
    p = np.bincount(ids) / len(ids)
    p = p[p > 0]
    assert objective.entropy == pytest.approx(-(p * np.log(p)).sum())
    dev = objective.evaluate(objective.module, torch.device("cpu"))
    # a random model is near log(vocab), far above the corpus unigram entropy
    assert dev["mlm_loss"] > objective.entropy
    assert dev["mlm_loss"] == pytest.approx(np.log(len(objective.tokenizer)), abs=0.5)


# --------------------------------------------------------------------------- optimiser


def test_no_weight_decay_on_biases_and_layernorms_and_the_head_has_its_own_rate() -> None:
    torch.manual_seed(0)
    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            num_labels=2,
        )
    )
    groups = param_groups(
        model, lr=1e-4, weight_decay=0.1, head_lr=1e-2, head_prefixes=("classifier.",)
    )
    by_name = {id(p): n for n, p in model.named_parameters()}
    for group in groups:
        names = [by_name[id(p)] for p in group["params"]]
        if group["weight_decay"] > 0:
            assert not any(n.endswith("bias") or "LayerNorm" in n for n in names)
        else:
            assert all(n.endswith("bias") or "LayerNorm" in n for n in names)
        head = group["name"].startswith("head")
        assert all(n.startswith("classifier.") == head for n in names)
        assert group["lr"] == (1e-2 if head else 1e-4)
    covered = sum(len(g["params"]) for g in groups)
    assert covered == len(list(model.parameters()))


def test_freezing_k_layers_counts_the_embeddings_as_layer_zero() -> None:
    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=32,
        )
    )
    assert freeze_lowest_layers(model, 2) == ["embed", "layers.1.output"]
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("bert.embeddings.") for n in frozen)
    assert any(n.startswith("bert.encoder.layer.0.") for n in frozen)
    assert not any(n.startswith(("bert.encoder.layer.1.", "classifier.")) for n in frozen)
    with pytest.raises(StudyError, match="exceeds"):
        freeze_lowest_layers(model, 5)


# --------------------------------------------------------------------------- loop and resume


class _CrashError(Exception):
    pass


def _crash_at(step: int):
    def on_step(at: int) -> None:
        if at == step:
            raise _CrashError

    return on_step


def test_resumed_training_ends_bit_identical_to_an_uninterrupted_run(
    corpus: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    job = tiny_pretrain(corpus, grad_accum=2, steps=6, save_steps=[3])
    straight = train_job(job, build_pretrain(job, seed=0), job_dir=tmp_path / "a" / "tiny", seed=0)

    job_dir = tmp_path / "b" / "tiny"
    with pytest.raises(_CrashError):
        train_job(job, build_pretrain(job, seed=0), job_dir=job_dir, seed=0, on_step=_crash_at(5))
    resume_from = find_resume_point(job_dir)
    assert resume_from is not None and resume_from.name == "step-3"
    assert not (job_dir / "final").exists()
    objective = build_pretrain(job, seed=0, tokenizer=AutoTokenizer.from_pretrained(resume_from))
    resumed = train_job(job, objective, job_dir=job_dir, seed=0, resume_from=resume_from)

    assert _curves(resumed) == _curves(straight)  # same losses, lr and dev metrics at each step
    a, b = _weights(tmp_path / "a" / "tiny" / "final"), _weights(job_dir / "final")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # only the newest checkpoint keeps the optimizer state; every one keeps weights and state
    steps = sorted(p.name for p in job_dir.glob("step-*"))
    assert steps == ["step-0", "step-3", "step-6"]
    assert [(job_dir / s / OPTIMIZER_FILE).exists() for s in steps] == [False, False, True]
    assert all((job_dir / s / STATE_FILE).exists() for s in steps)


def test_resume_refuses_a_checkpoint_of_another_architecture(corpus: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    job = tiny_pretrain(corpus, steps=3, save_steps=[])
    with pytest.raises(_CrashError):
        train_job(job, build_pretrain(job, seed=0), job_dir=tmp_path, seed=0, on_step=_crash_at(1))
    resume_from = find_resume_point(tmp_path)
    wider = tiny_pretrain(corpus, steps=3, save_steps=[], d_model=48, n_heads=2)
    objective = build_pretrain(wider, seed=0, tokenizer=AutoTokenizer.from_pretrained(resume_from))
    with pytest.raises(
        StudyError,
        match=r"architecture does not match \(hidden_size: 32 in "
        r"checkpoint, 48 in study",
    ):
        train_job(wider, objective, job_dir=tmp_path, seed=0, resume_from=resume_from)
    changed = tiny_pretrain(corpus, steps=3, save_steps=[], lr=5e-4)
    tokenizer = AutoTokenizer.from_pretrained(resume_from)
    objective = build_pretrain(changed, seed=0, tokenizer=tokenizer)
    with pytest.raises(StudyError, match=r"changed since the checkpoint \(lr: 0.001 -> 0.0005\)"):
        train_job(changed, objective, job_dir=tmp_path, seed=0, resume_from=resume_from)


# --------------------------------------------------------------------------- stage


def _context(study: dict, tmp_path: Path, run_dir: Path | None = None):
    from probe.cache import FeatureCache
    from probe.rundir import RunContext, create_run_dir
    from probe.study import parse_study

    parsed = parse_study(study)
    check_study(parsed)
    ctx = RunContext(
        study=parsed,
        run_dir=run_dir or create_run_dir(parsed, tmp_path / "runs"),
        device=torch.device("cpu"),
        cache=FeatureCache(tmp_path / "cache"),
        console=Console(quiet=True),
    )
    ctx.start()
    return ctx


def test_stage_pretrains_then_finetunes_from_the_checkpoint_and_writes_tidy_curves(
    corpus: Path, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from probe.training.stage import run_training

    monkeypatch.setenv("PROBE_DATA_DIR", str(write_sst2(tmp_path / "data")))
    finetune = {
        "kind": "finetune",
        "task": "sst2",
        "max_length": 64,  # the tiny model's positions (validation refuses more)
        "steps": 60,
        "batch_size": 16,
        "lr": 3e-3,
        "warmup_ratio": 0.0,
        "eval_every": 30,
    }
    study = {
        "name": "t",
        "seed": 3,
        "figures": ["html"],
        "models": [{"spec": "trained:tiny@0", "name": "step-0"}, "trained:tiny"],
        "train": [
            tiny_pretrain(corpus, steps=4, save_steps=[2]).model_dump(),
            {**finetune, "name": "cls-pretrained", "model": str(tiny_model_dir)},
            {
                **finetune,
                "name": "cls-frozen",
                "model": str(tiny_model_dir),
                "freeze_layers": 3,
                "head_lr": 1e-2,
                "steps": 2,
            },
            {**finetune, "name": "cls-from-tiny", "model": "trained:tiny", "steps": 2},
        ],
    }
    ctx = _context(study, tmp_path)
    run_training(ctx)
    stage_figures(ctx, "train")  # the runner draws figures from the table

    table = ctx.read_table("training")
    assert {"study", "model", "task", "split", "metric", "value", "step", "epoch"} <= set(table)
    assert set(table["model"]) == {"tiny", "cls-pretrained", "cls-frozen", "cls-from-tiny"}
    tiny = table[table["model"] == "tiny"]
    assert set(tiny["task"]) == {"mlm_nsp"}
    train_loss = tiny[(tiny["split"] == "train") & (tiny["metric"] == "loss")]
    assert list(train_loss["step"]) == [1, 2, 3, 4]  # one row per optimizer step
    train_metrics = set(tiny.loc[tiny["split"] == "train", "metric"])
    assert {"mlm_loss", "nsp_loss", "lr", "grad_norm"} <= train_metrics
    assert {"mlm_loss", "nsp_accuracy"} <= set(tiny.loc[tiny["split"] == "dev", "metric"])
    assert tiny.loc[tiny["metric"] == "unigram_entropy", "step"].isna().all()

    def dev_accuracy(job: str) -> float:
        rows = table[
            (table["model"] == job) & (table["split"] == "dev") & (table["metric"] == "accuracy")
        ]
        return float(rows.sort_values("step")["value"].iloc[-1])

    assert dev_accuracy("cls-pretrained") > 0.9  # the sentiment word decides the label
    # freeze_layers 3 = embeddings and both encoder layers: only pooler and classifier move
    frozen_dir = ctx.run_dir / "checkpoints" / "cls-frozen"
    start = BertForSequenceClassification.from_pretrained(frozen_dir / "step-0").state_dict()
    end = BertForSequenceClassification.from_pretrained(frozen_dir / "final").state_dict()
    moved = {k for k in start if not torch.equal(start[k], end[k])}
    assert moved and all(k.startswith(("bert.pooler.", "classifier.")) for k in moved)

    job_dir = ctx.run_dir / "checkpoints" / "tiny"
    assert sorted(p.name for p in job_dir.iterdir()) == ["final", "step-0", "step-2", "step-4"]
    initial = resolve_model("trained:tiny@0", run_dir=ctx.run_dir)
    assert Path(initial.path) == job_dir / "step-0"
    assert resolve_model("trained:tiny@last", run_dir=ctx.run_dir).path == str(job_dir / "step-4")
    config = json.loads((job_dir / "final" / "config.json").read_text())
    assert config["architectures"] == ["BertForPreTraining"] and config["hidden_size"] == 32
    assert (ctx.run_dir / "figures" / "training_mlm_nsp.html").exists()
    assert (ctx.run_dir / "figures" / "training_sst2.html").exists()


def test_a_resumed_run_skips_finished_jobs_and_keeps_their_curves(
    corpus: Path, tmp_path: Path
) -> None:
    from probe.training.stage import run_training

    study = {
        "name": "t",
        "figures": ["html"],
        "train": {
            "figures": False,
            "jobs": [
                tiny_pretrain(corpus, name="a", steps=2, save_steps=[]).model_dump(),
                tiny_pretrain(corpus, name="b", steps=4, save_steps=[2]).model_dump(),
            ],
        },
    }
    ctx = _context(study, tmp_path)
    import probe.training.stage as stage

    real = stage.train_job

    def crashing(job, objective, **kwargs):
        return real(job, objective, **kwargs, on_step=_crash_at(3) if job.name == "b" else None)

    stage.train_job = crashing
    try:
        with pytest.raises(_CrashError):
            run_training(ctx)
    finally:
        stage.train_job = real
    before = ctx.read_table("training")
    assert set(before["model"]) == {"a", "b"}  # published at b's step-2 checkpoint
    final_a = (ctx.run_dir / "checkpoints" / "a" / "final" / "model.safetensors").stat().st_mtime_ns

    ctx = _context(study, tmp_path, run_dir=ctx.run_dir)
    run_training(ctx)
    after = ctx.read_table("training")
    assert (
        ctx.run_dir / "checkpoints" / "a" / "final" / "model.safetensors"
    ).stat().st_mtime_ns == final_a  # not retrained
    b_loss = after[
        (after["model"] == "b") & (after["metric"] == "loss") & (after["split"] == "train")
    ]
    assert list(b_loss["step"]) == [1, 2, 3, 4]
    a_rows = after[after["model"] == "a"].drop(columns=["study"]).reset_index(drop=True)
    a_before = before[before["model"] == "a"].drop(columns=["study"]).reset_index(drop=True)
    assert a_rows.equals(a_before)


# --------------------------------------------------------------------------- figures


def test_training_figure_compares_jobs_on_shared_panels_with_reference_lines() -> None:
    import pandas as pd

    from probe.figures.training import loss_curves, training_curves, training_figures

    rows = []
    for job, scale in (("pretrained", 1.0), ("scratch", 2.0)):
        rows += [
            {
                "model": job,
                "task": "sst2",
                "split": "train",
                "metric": "loss",
                "step": s,
                "value": scale / s,
            }
            for s in range(1, 101)
        ]
        rows += [
            {
                "model": job,
                "task": "sst2",
                "split": "dev",
                "metric": m,
                "step": s,
                "value": v / scale,
            }
            for s in (0, 50, 100)
            for m, v in (("loss", 0.5), ("accuracy", 0.9))
        ]
        rows.append(
            {
                "model": job,
                "task": "sst2",
                "split": "dev",
                "metric": "majority_accuracy",
                "step": None,
                "value": 0.5,
            }
        )
    table = pd.DataFrame(rows)
    fig = training_curves(table)
    named = [
        t for t in fig.data if t.showlegend is not False and t.name in ("pretrained", "scratch")
    ]
    assert [t.name for t in named] == ["pretrained", "scratch"]  # one legend entry per job
    assert len(fig.layout.annotations) == 3  # train loss, dev loss, dev accuracy panels
    references = [t for t in fig.data if t.name and "majority" in t.name]
    assert len(references) == 2 and list(references[0].y) == [0.5, 0.5]
    raw = loss_curves(table, smooth=1)
    assert [len(t.x) for t in raw.data] == [100, 100]
    assert list(training_figures(table)) == ["training_sst2"]


def test_each_epoch_visits_every_example_once_and_grouping_by_length_cuts_padding() -> None:
    from probe.training.loop import _ExampleStream

    lengths = np.random.default_rng(0).integers(5, 60, size=1000)
    plain, grouped = _ExampleStream(1000, 7), _ExampleStream(1000, 7, lengths, group=400)
    for stream in (plain, grouped):
        for epoch in range(2):
            seen = [stream(p) for p in range(epoch * 1000, (epoch + 1) * 1000)]
            assert {e for e, _ in seen} == {epoch}
            assert sorted(i for _, i in seen) == list(range(1000))
    assert [plain(p) for p in range(5)] == [_ExampleStream(1000, 7)(p) for p in range(5)]

    def padding(stream: _ExampleStream) -> int:
        batches = np.array([lengths[stream(p)[1]] for p in range(1000)]).reshape(-1, 20)
        return int((batches.max(axis=1, keepdims=True) - batches).sum())

    assert padding(grouped) < padding(plain) / 4


def test_both_objectives_provide_every_member_of_the_objective_protocol(
    corpus: Path, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typing import get_type_hints

    from probe.training.config import FinetuneJob
    from probe.training.finetune import build_finetune
    from probe.training.objective import Objective

    monkeypatch.setenv("PROBE_DATA_DIR", str(write_sst2(tmp_path / "data")))
    finetune = FinetuneJob(
        name="f", kind="finetune", model=str(tiny_model_dir), task="sst2", steps=1, max_length=64
    )
    members = set(get_type_hints(Objective)) | {
        name for name, value in vars(Objective).items() if callable(value) and name[0] != "_"
    }
    assert {"batch", "loss", "evaluate", "extra_evaluations", "lengths"} <= members
    for objective in (
        build_pretrain(tiny_pretrain(corpus), seed=0),
        build_finetune(finetune, seed=0),
    ):
        missing = sorted(m for m in members if not hasattr(objective, m))
        assert not missing, f"{type(objective).__name__} lacks {missing}"
