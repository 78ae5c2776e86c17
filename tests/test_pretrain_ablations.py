"""Pretraining ablation settings: static vs dynamic masks, replacement shares, NSP off, packing,
the fixed evaluation set shared by every arm, and the ablation table and figures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from probe.training.loop import _MASKING_TAG, _derived_seed, train_job
from probe.training.masking import IGNORE_INDEX, Masker
from probe.training.packing import full_sentence_chunks
from probe.training.pretrain import build_pretrain
from probe.training.wordpiece import wordpiece_tokenizer
from tests.test_training import (
    _crash_at,
    _CrashError,
    _curves,
    _one_thread,  # noqa: F401 (an autouse fixture: tiny models on one torch thread)
    _weights,
    tiny_pretrain,
    write_corpus,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "docs.txt")


def _step_generator(step: int, seed: int = 0) -> torch.Generator:
    """The generator the training loop gives dynamic masking at ``step`` (one process)."""
    return torch.Generator().manual_seed(_derived_seed(seed, _MASKING_TAG, step, 0, 0))


# --------------------------------------------------------------------------- static vs dynamic


def test_static_masks_repeat_exactly_for_one_copy_and_differ_between_copies(corpus: Path) -> None:
    objective = build_pretrain(tiny_pretrain(corpus, masking="static", dupe_factor=3), seed=0)
    chunks = list(range(min(12, objective.n_examples)))

    def fed(epoch: int, step: int) -> dict[str, torch.Tensor]:
        # the generator is what dynamic masking would use; static masking must ignore it
        return objective.batch([(epoch, i) for i in chunks], _step_generator(step))

    first = fed(0, step=0)
    again = fed(3, step=97)  # epoch 3 feeds copy 0 again, at another step
    assert all(torch.equal(first[k], again[k]) for k in first)
    other = fed(1, step=0)  # copy 1: its own masks (and its own NSP pairs)
    differs = (first["labels"] != IGNORE_INDEX) != (other["labels"] != IGNORE_INDEX)
    assert differs.any()
    # each copy keeps its masks every time it comes round
    assert torch.equal(fed(1, step=5)["labels"], fed(4, step=6)["labels"])


def test_static_mask_of_a_chunk_does_not_depend_on_its_batch(corpus: Path) -> None:
    objective = build_pretrain(tiny_pretrain(corpus, masking="static"), seed=0)
    alone = objective.batch([(0, 5)], None)
    n = int(alone["attention_mask"].sum())
    with_others = objective.batch([(0, 2), (0, 5), (0, 9)], None)
    assert torch.equal(with_others["input_ids"][1, :n], alone["input_ids"][0, :n])
    assert torch.equal(with_others["labels"][1, :n], alone["labels"][0, :n])


def test_dynamic_masks_differ_across_epochs(corpus: Path) -> None:
    objective = build_pretrain(tiny_pretrain(corpus, nsp=False), seed=0)
    chunks = list(range(min(12, objective.n_examples)))
    # epochs 0 and 1 reach the same chunks at different steps, hence different generators
    first = objective.batch([(0, i) for i in chunks], _step_generator(0))
    second = objective.batch([(1, i) for i in chunks], _step_generator(7))
    # without NSP the inputs are the same chunks; only the masks can differ
    assert torch.equal(first["attention_mask"], second["attention_mask"])
    assert not torch.equal(first["labels"], second["labels"])


def test_resumed_static_masking_run_ends_bit_identical(corpus: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from probe.training.checkpoint import find_resume_point

    job = tiny_pretrain(corpus, masking="static", dupe_factor=2, batch_size=16, steps=8,
                        save_steps=[4])  # fmt: skip
    objective = build_pretrain(job, seed=0)
    assert objective.n_examples < 8 * 16  # crosses an epoch: copy 1 is used too
    straight = train_job(job, objective, job_dir=tmp_path / "a", seed=0)
    with pytest.raises(_CrashError):
        train_job(job, build_pretrain(job, seed=0), job_dir=tmp_path / "b", seed=0,
                  on_step=_crash_at(6))  # fmt: skip
    resume_from = find_resume_point(tmp_path / "b")
    assert resume_from is not None and resume_from.name == "step-4"
    tokenizer = AutoTokenizer.from_pretrained(resume_from)
    resumed = train_job(job, build_pretrain(job, seed=0, tokenizer=tokenizer),
                        job_dir=tmp_path / "b", seed=0, resume_from=resume_from)  # fmt: skip
    assert _curves(resumed) == _curves(straight)
    a, b = _weights(tmp_path / "a" / "final"), _weights(tmp_path / "b" / "final")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(r["metric"] == "mlm_loss_seen_masks" for r in straight)


# --------------------------------------------------------------------------- replacement rule

TEXT = ["the unbelievable lobsters were walking along the shore", "claws and antennae grow"] * 30


@pytest.fixture(scope="module")
def tokenizer():
    return wordpiece_tokenizer(TEXT, vocab_size=45, min_frequency=1)


@pytest.mark.parametrize("whole_word", [False, True])
@pytest.mark.parametrize("replacement", [(1.0, 0.0, 0.0), (0.5, 0.3, 0.2), (0.8, 0.1, 0.1)])
def test_replacement_shares_match_the_settings_within_sampling_error(
    tokenizer, replacement: tuple[float, float, float], whole_word: bool
) -> None:
    enc = tokenizer([TEXT[i % 2] for i in range(3000)], padding=True, return_tensors="pt",
                    return_special_tokens_mask=True)  # fmt: skip
    ids, special = enc["input_ids"], enc["special_tokens_mask"]
    masker = Masker(tokenizer, 0.15, whole_word=whole_word, replacement=replacement)
    inputs, labels = masker(ids, special, torch.Generator().manual_seed(3))
    targets = labels != IGNORE_INDEX
    n = int(targets.sum())
    masked = ((inputs == tokenizer.mask_token_id) & targets).sum() / n
    unchanged = ((inputs == ids) & targets).sum() / n
    other = 1 - masked - unchanged
    # a random replacement draws the original token with chance 1/|V|: it counts as unchanged
    p_random_same = 1 / len(tokenizer)
    expected = (
        replacement[0],
        replacement[1] * (1 - p_random_same),
        replacement[2] + replacement[1] * p_random_same,
    )
    for share, p in zip((masked, other, unchanged), expected, strict=True):
        # whole words are drawn together: allow for the clustering with a wider bound
        sigma = math.sqrt(p * (1 - p) / n) * (3 if whole_word else 1)
        assert abs(float(share) - p) <= 4 * sigma + 1e-9, (replacement, float(share), p)


def test_replacement_must_be_three_shares_that_sum_to_one(corpus: Path) -> None:
    with pytest.raises(ValidationError, match="must sum to 1"):
        tiny_pretrain(corpus, replacement=(0.8, 0.1, 0.2))
    with pytest.raises(ValidationError, match="dupe_factor only applies"):
        tiny_pretrain(corpus, dupe_factor=10)
    with pytest.raises(ValidationError, match="full_sentences"):
        tiny_pretrain(corpus, packing="full_sentences")
    assert tiny_pretrain(corpus, masking="static").copies == 10  # BERT's default


# --------------------------------------------------------------------------- NSP off, packing


@pytest.mark.parametrize("packing", ["document", "full_sentences"])
def test_nsp_off_batches_carry_no_nsp_labels_and_the_loss_is_the_mlm_loss(
    corpus: Path, packing: str
) -> None:
    objective = build_pretrain(tiny_pretrain(corpus, nsp=False, packing=packing), seed=0)
    batch = objective.batch([(0, i) for i in range(8)], _step_generator(0))
    assert "next_sentence_label" not in batch
    assert (batch["token_type_ids"] == 0).all()  # one segment
    parts = objective.loss(objective.module, batch)
    assert set(parts) == {"loss", "mlm_loss"}
    assert torch.equal(parts["loss"], parts["mlm_loss"])  # no NSP term
    # the NSP head gets no gradient: it is not part of the loss
    parts["loss"].backward()
    nsp_head = objective.model.cls.seq_relationship
    assert nsp_head.weight.grad is None
    with pytest.raises(ValueError, match="MLM-only model got next_sentence_label"):
        objective.module(**batch, next_sentence_label=torch.zeros(8, dtype=torch.long))
    with_nsp = build_pretrain(tiny_pretrain(corpus), seed=0)
    nsp_parts = with_nsp.loss(with_nsp.module, with_nsp.batch([(0, 0)], _step_generator(0)))
    assert torch.allclose(nsp_parts["loss"], nsp_parts["mlm_loss"] + nsp_parts["nsp_loss"])


def test_full_sentence_packing_crosses_documents_with_a_separator_and_keeps_every_token() -> None:
    rng = np.random.default_rng(0)
    docs = [
        [rng.integers(10, 50, size=int(rng.integers(1, 9))) for _ in range(int(rng.integers(1, 6)))]
        for _ in range(30)
    ]
    chunks = full_sentence_chunks(docs, max_tokens=20, separator=3)
    assert all(0 < len(c) <= 20 for c in chunks)
    assert sum((c == 3).sum() for c in chunks) > 0  # some inputs cross a document boundary
    # no sentence is longer than the limit here: the tokens are all kept, in order
    packed = np.concatenate([c[c != 3] for c in chunks])
    assert np.array_equal(packed, np.concatenate([s for d in docs for s in d]))
    assert len(chunks) < sum(len(d) for d in docs)  # sentences of several documents share inputs


# --------------------------------------------------------------------------- fair evaluation


def _content(batches: list[dict[str, torch.Tensor]], cls: int, sep: int) -> list[tuple]:
    """(input ids, labels) of each evaluation sequence without [CLS], [SEP] and padding."""
    out = []
    for batch in batches:
        for ids, labels, attention in zip(
            batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True
        ):
            keep = (attention == 1) & (ids != cls) & (ids != sep)
            out.append((ids[keep].tolist(), labels[keep].tolist()))
    return out


def test_every_arm_and_seed_is_evaluated_on_the_same_masked_tokens(corpus: Path) -> None:
    arms = [
        dict(),
        dict(masking="static", dupe_factor=10),
        dict(nsp=False),
        dict(whole_word_mask=True),
        dict(replacement=(1.0, 0.0, 0.0)),
    ]
    objectives = [build_pretrain(tiny_pretrain(corpus, **arm), seed=0) for arm in arms]
    objectives.append(build_pretrain(tiny_pretrain(corpus), seed=1))
    tok = objectives[0].tokenizer
    reference = _content(objectives[0].eval_sets["dev"], tok.cls_token_id, tok.sep_token_id)
    assert sum(lab != IGNORE_INDEX for _, labels in reference for lab in labels) > 20
    for objective in objectives[1:]:
        for split in ("dev", "train_sample"):
            got = _content(objective.eval_sets[split], tok.cls_token_id, tok.sep_token_id)
            want = _content(objectives[0].eval_sets[split], tok.cls_token_id, tok.sep_token_id)
            assert got == want, (objective.job, split)
    # the MLM-only arm sees one segment, the NSP arms two
    assert (objectives[2].eval_sets["dev"][0]["token_type_ids"] == 0).all()
    assert (objectives[0].eval_sets["dev"][0]["token_type_ids"] == 1).any()
    assert "dev_nsp" not in objectives[2].eval_sets
    assert "train_seen" in objectives[1].eval_sets and "train_seen" not in objectives[0].eval_sets


def test_evaluation_reports_accuracy_gap_sets_and_nsp_only_with_nsp(corpus: Path) -> None:
    for nsp in (True, False):
        objective = build_pretrain(tiny_pretrain(corpus, nsp=nsp), seed=0)
        metrics = objective.evaluate(objective.module, torch.device("cpu"))
        assert 0 <= metrics["mlm_accuracy"] <= 1
        assert math.isclose(metrics["mlm_loss"], math.log(len(objective.tokenizer)), rel_tol=0.1)
        assert ("nsp_accuracy" in metrics) == nsp
        rows = objective.extra_evaluations(objective.module, torch.device("cpu"))
        assert {r["metric"] for r in rows} == {"mlm_loss", "mlm_accuracy"}
        assert all(r["split"] == "train_sample" for r in rows)


# --------------------------------------------------------------------------- table and figures


def _ablation_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, probe_rows = [], []
    finals = {"base": (3.0, 3.1), "far": (2.0, 2.05), "near": (3.05, 3.2)}
    for arm, values in finals.items():
        for seed, final in enumerate(values):
            job = f"{arm}-s{seed}"
            task = "mlm" if arm == "near" else "mlm_nsp"
            for step, value in ((0, 7.0), (10, final)):
                common = {"model": job, "arm": arm, "seed": seed, "task": task, "kind": "pretrain",
                          "step": step, "epoch": step / 5}  # fmt: skip
                rows.append({**common, "split": "dev", "metric": "mlm_loss", "value": value})
                rows.append({**common, "split": "dev", "metric": "mlm_accuracy", "value": 0.3})
                rows.append(
                    {**common, "split": "train_sample", "metric": "mlm_loss", "value": value - 0.5}
                )
                if task == "mlm_nsp":
                    rows.append({**common, "split": "dev", "metric": "nsp_accuracy", "value": 0.6})
            for layer in range(3):
                for split, bonus in (("dev", 0.0), ("test", -0.01)):
                    probe_rows.append(
                        {"model": job, "task": "upos", "layer": layer, "probe": "linear",
                         "control": "task", "seed": 0, "split": split, "metric": "accuracy",
                         "value": 0.5 + 0.1 * (layer == 1) + bonus}
                    )  # fmt: skip
    training = pd.DataFrame(rows)
    training["step"] = pd.array(training["step"], dtype="Int64")
    return training, pd.DataFrame(probe_rows)


def test_ablation_table_says_whether_a_difference_exceeds_the_seed_spread() -> None:
    from probe.figures.ablations import ablation_table, final_metrics

    training, probe = _ablation_tables()
    final = final_metrics(training, probe)
    assert list(final["job"]) == ["base-s0", "base-s1", "far-s0", "far-s1", "near-s0", "near-s1"]
    assert final["gap"].round(6).eq(0.5).all()
    assert final["best_upos_layer"].eq(1).all() and final["best_upos"].round(6).eq(0.59).all()
    assert final["epochs"].eq(2).all()
    table = ablation_table(final).set_index(["arm", "metric"])
    assert table.loc[("far", "mlm_loss"), "beyond_spread"]  # [2.0, 2.05] vs [3.0, 3.1]
    assert not table.loc[("near", "mlm_loss"), "beyond_spread"]  # [3.05, 3.2] overlaps
    assert table.loc[("far", "mlm_loss"), "diff"] == pytest.approx(-1.025)
    assert table.loc[("base", "mlm_loss"), "sd"] == pytest.approx(np.std([3.0, 3.1], ddof=1))
    assert table.loc[("near", "nsp_accuracy"), "n_seeds"] == 0  # MLM-only: no NSP accuracy
    assert pd.isna(table.loc[("base", "mlm_loss"), "beyond_spread"])


def test_ablation_figures_draw_one_line_and_band_per_arm_and_skip_single_jobs() -> None:
    from probe.export import build_figures
    from probe.figures.ablations import ablation_figures

    training, probe = _ablation_tables()
    figures = ablation_figures(training, probe)
    assert set(figures) == {"ablation_mlm_loss", "ablation_finals", "ablation_probes"}
    lines = [t for t in figures["ablation_mlm_loss"].data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["base (2 seeds)", "far (2 seeds)", "near (2 seeds)"]
    assert list(lines[1].y) == pytest.approx([7.0, 2.025])
    # one job per arm is no ablation: nothing drawn (e.g. studies/pretrain_tiny.yaml)
    single = training[training["seed"] == 0]
    assert ablation_figures(single, probe) == {}
    assert "ablation_finals" in build_figures({"training": training, "probe": probe})


def test_dashboard_ablation_page_draws_the_figures_and_the_table(tmp_path: Path) -> None:
    from tests.test_dashboard import FULL, _app, _charts, _manifest, _texts, _write_run, full_tables

    training, probe = _ablation_tables()
    config = {"train": {"jobs": []}, "probe": {"tasks": ["upos"]}}
    stages = {"train": "done", "probe": "done"}
    label = "ablations/20260101-000000"
    _write_run(tmp_path, label, _manifest("ablations", "complete", stages, config),
               {"training": training, "probe": probe})  # fmt: skip
    at = _app(tmp_path, [label], "views/ablations.py")
    titles = " ".join(str(c["layout"].get("title", {}).get("text", "")) for c in _charts(at))
    assert "dev mlm_loss by arm" in titles and "probe test accuracy by layer" in titles
    assert len(_charts(at)) == 3
    summary = at.dataframe[0].value
    row = summary[(summary["arm"] == "far") & (summary["metric"] == "mlm_loss")].iloc[0]
    assert bool(row["beyond_spread"]) and row["diff"] == pytest.approx(-1.025)
    # a run without arms of several seeds says what the page needs
    _write_run(tmp_path, FULL, _manifest("full", "complete", stages, config), full_tables())
    assert "No ablation" in _texts(_app(tmp_path, [FULL], "views/ablations.py"))
