"""Fine-tuning strategies and sentence pairs (tiny seeded BERTs, CPU, offline, a few steps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from transformers import AutoModel, AutoTokenizer, BertConfig, BertForSequenceClassification

from probe.adaptation import ScalarMix, is_new_parameter
from probe.data import STSPair
from probe.models import load_model, resolve_model
from probe.training.checkpoint import OPTIMIZER_FILE
from probe.training.config import FinetuneJob
from probe.training.finetune import _encode_pairs, build_finetune
from probe.training.loop import train_job
from probe.training.optim import param_groups
from probe.training.strategies import layer_of_parameters
from tests.test_training import write_sst2


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sst2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sst2(tmp_path_factory.mktemp("sst2"), n_train=48, n_dev=16)


def _job(model: Path, **strategy) -> FinetuneJob:
    values = {
        "name": "job",
        "kind": "finetune",
        "model": str(model),
        "task": "sst2",
        "steps": 3,
        "batch_size": 8,
        "lr": 1e-2,  # large: every trainable weight visibly moves in 3 steps
        "warmup_ratio": 0.0,
        "max_length": 32,
        **strategy,
    }
    return FinetuneJob(**values)


def _train(job: FinetuneJob, job_dir: Path):
    objective = build_finetune(job, seed=0)
    before = {n: p.detach().clone() for n, p in objective.module.named_parameters()}
    history = train_job(job, objective, job_dir=job_dir, seed=0)
    return objective, before, history


STRATEGIES = {
    "freeze": {"freeze_layers": 2},
    "top": {"train_top_layers": 1},
    "features-mix": {"features": True, "head": "cls", "scalar_mix": True},
    "lora": {"lora": {"rank": 2, "targets": ["query", "value"]}},
    "adapter": {"adapter": {"size": 4}},
}


def _expected_trainable(strategy: str, name: str) -> bool:
    name = name.removeprefix("model.")  # the readout wraps the task model
    if name.startswith("classifier."):
        return True
    if strategy == "freeze":
        return not name.startswith(("bert.embeddings.", "bert.encoder.layer.0."))
    if strategy == "top":
        return name.startswith(("bert.encoder.layer.1.", "bert.pooler."))
    if strategy == "features-mix":
        return name.startswith("scalar_mix.")
    if strategy == "lora":
        return "lora_" in name or name.startswith("bert.pooler.")
    # adapters: their own weights, the encoder layers' LayerNorms and the pooler (Houlsby)
    layer_norm = name.startswith("bert.encoder.") and "LayerNorm" in name
    return ".adapter." in name or layer_norm or name.startswith("bert.pooler.")


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_frozen_parameters_do_not_change_and_get_no_optimizer_state(
    strategy: str,
    tiny_model_dir: Path,
    sst2_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROBE_DATA_DIR", str(sst2_dir))
    job = _job(tiny_model_dir, **STRATEGIES[strategy])
    objective, before, history = _train(job, tmp_path / "job")
    params = dict(objective.module.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert trainable == {n for n in params if _expected_trainable(strategy, n)}
    for name, p in params.items():
        moved = not torch.equal(p.detach(), before[name])
        assert moved == (name in trainable), name
    # the optimizer holds exactly the trainable tensors, and state (Adam moments) for no other
    saved = torch.load(tmp_path / "job" / "step-3" / OPTIMIZER_FILE, weights_only=True)
    grouped = sum(len(g["params"]) for g in saved["optimizer"]["param_groups"])
    assert grouped == len(trainable) == len(saved["optimizer"]["state"])
    count = [r["value"] for r in history if r["metric"] == "trainable_parameters"]
    assert count == [sum(params[n].numel() for n in trainable)]


def test_lora_and_adapter_jobs_change_only_their_own_weights_and_load_as_model_specs(
    tiny_model_dir: Path, sst2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBE_DATA_DIR", str(sst2_dir))
    for name in ("lora", "adapter"):
        objective, before, history = _train(
            _job(tiny_model_dir, **STRATEGIES[name]), tmp_path / name
        )
        moved = {
            n
            for n, p in objective.model.named_parameters()
            if not torch.equal(p.detach(), before[n])
        }
        encoder_moved = {n for n in moved if n.startswith("bert.") and not is_new_parameter(n)}
        allowed = {"lora": ("bert.pooler.",), "adapter": ("bert.pooler.", "LayerNorm")}[name]
        assert all(any(a in n for a in allowed) for n in encoder_moved)
        assert any(is_new_parameter(n) for n in moved)
        # the checkpoint is a model spec: its encoder computes what the trained model computes
        loaded = load_model(resolve_model(str(tmp_path / name / "final")), AutoModel)
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
        batch = tokenizer(["a fine film", "an awful plot"], return_tensors="pt", padding=True)
        objective.model.eval()
        with torch.no_grad():
            want = objective.model.bert(**batch).last_hidden_state
            got = loaded.eval()(**batch).last_hidden_state
        torch.testing.assert_close(got, want)
        change = [r for r in history if r["metric"] == "relative_weight_change"]
        assert {r["layer"] for r in change} == {0, 1, 2}
        assert all(r["value"] == 0 for r in change if r["layer"] == 0)  # embeddings frozen


def test_layer_lr_decay_gives_layer_l_the_rate_lr_times_xi_to_the_l_minus_l() -> None:
    torch.manual_seed(0)
    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=32,
        )
    )
    groups = param_groups(
        model,
        lr=1e-3,
        weight_decay=0.01,
        head_lr=1e-2,
        head_prefixes=("classifier.",),
        layer_of=layer_of_parameters(model),
        layer_lr_decay=0.5,
    )
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert groups[0]["lr"] == 1e-3  # the logged rate is the base rate
    for name, p in model.named_parameters():
        if name.startswith("bert.embeddings."):
            expected = 1e-3 * 0.5**3
        elif name.startswith("bert.encoder.layer."):
            layer = int(name.split(".")[3]) + 1
            expected = 1e-3 * 0.5 ** (3 - layer)
        elif name.startswith("bert.pooler."):
            expected = 1e-3
        else:
            expected = 1e-2
        assert rate[id(p)] == pytest.approx(expected), name


def test_scalar_mix_weights_sum_to_one_and_learn_with_the_head(
    tiny_model_dir: Path, sst2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mix = ScalarMix(5)
    with torch.no_grad():
        mix.weights.copy_(torch.randn(5))
    assert float(mix.mixture().detach().sum()) == pytest.approx(1.0)
    monkeypatch.setenv("PROBE_DATA_DIR", str(sst2_dir))
    job = _job(tiny_model_dir, features=True, head="mean", scalar_mix=True, eval_every=1)
    _, _, history = _train(job, tmp_path / "mix")
    last = {
        r["layer"]: r["value"] for r in history if r["metric"] == "mix_weight" and r["step"] == 3
    }
    assert sorted(last) == [0, 1, 2]
    assert sum(last.values()) == pytest.approx(1.0)
    assert len(set(last.values())) == 3  # moved away from the uniform start


def test_pair_inputs_have_segment_ids_0_for_cls_a_and_first_sep_then_1_for_b_and_last_sep(
    tiny_model_dir: Path,
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    pair = STSPair("a man plays", "someone is playing guitar", 4.2)
    split = _encode_pairs(tokenizer, [pair], [4.2], 32)
    ids, segments = split.features[0]["input_ids"], split.features[0]["token_type_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    first_sep = tokens.index("[SEP]")
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and tokens.count("[SEP]") == 2
    assert tokens[1:first_sep] == tokenizer.tokenize(pair.sentence1)
    assert tokens[first_sep + 1 : -1] == tokenizer.tokenize(pair.sentence2)
    assert segments == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)


def test_stsb_is_a_regression_scored_by_pearson_and_spearman(
    tiny_model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    job = _job(tiny_model_dir, task="stsb", steps=2, limit={"train": 32, "dev": 24}, lr=1e-3)
    objective, _, history = _train(job, tmp_path / "stsb")
    assert objective.main_metric == "spearman" and objective.regression
    assert objective.model.config.num_labels == 1
    dev = {r["metric"] for r in history if r["split"] == "dev" and r["step"] == 2}
    assert {"loss", "pearson", "spearman"} <= dev


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lora": {"rank": 4}, "freeze_layers": 2}, "lora already freezes"),
        ({"lora": {"rank": 4}, "adapter": {"size": 8}}, "alternatives"),
        ({"features": True}, "freezes the pooler too"),
        ({"features": True, "head": "cls", "layer_lr_decay": 0.9}, "remove layer_lr_decay"),
        ({"scalar_mix": True}, "give head: cls or mean"),
        ({"task": "upos", "head": "mean"}, "apply to sentence tasks"),
        ({"freeze_layers": 1, "train_top_layers": 2}, "give one"),
    ],
)
def test_invalid_strategy_combinations_are_refused_with_their_fix(
    settings: dict, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        _job(Path("m"), **settings)


def _strategy_training_table():
    """Two seeds of three arms on sst2: full, freeze-1 and lora (with per-layer rows)."""
    rows = []
    arms = {"full": ("full", 1000, 0, 0.90), "freeze1": ("freeze", 600, 1, 0.86),
            "lora": ("lora", 20, 3, 0.88)}  # fmt: skip
    for arm, (strategy, trainable, frozen, dev) in arms.items():
        for seed in (0, 1):
            job = {"model": f"{arm}-{seed}", "task": "sst2", "seed": seed, "kind": "finetune",
                   "arm": arm, "strategy": strategy}  # fmt: skip
            for metric, value in (("trainable_parameters", trainable), ("total_parameters", 1000),
                                  ("frozen_layers", frozen), ("train_seconds", 5.0)):  # fmt: skip
                rows.append({**job, "split": "train", "metric": metric, "value": value})
            rows.append({**job, "split": "dev", "metric": "accuracy", "step": 10,
                         "value": dev + 0.01 * seed})  # fmt: skip
            for layer in range(3):
                moved = layer >= (1 if strategy == "lora" else frozen)  # LoRA moves layers 1..L
                change = 0.01 * (layer + 1) if moved else 0.0
                rows.append({**job, "split": "train", "metric": "relative_weight_change",
                             "step": 10, "layer": layer, "value": change})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["step"] = pd.array(frame["step"], dtype="Int64")
    frame["layer"] = pd.array(frame["layer"], dtype="Int64")
    return frame


def test_strategy_table_and_figures_show_each_arm_against_its_trainable_parameters() -> None:
    from probe.figures.strategies import strategy_figures, strategy_finals, strategy_table

    training = _strategy_training_table()
    table = strategy_table(strategy_finals(training)).set_index("arm")
    assert table.loc["lora", "trainable"] == 20 and table.loc["lora", "trainable_pct"] == 2.0
    assert table.loc["freeze1", "mean"] == pytest.approx(0.865)
    assert table.loc["full", ["min", "max"]].tolist() == pytest.approx([0.90, 0.91])
    figures = strategy_figures(training, style="paper")
    params = figures["strategy_params_sst2"]
    assert params.layout.xaxis.type == "log"
    means = {t.name.split(" ")[0]: (t.x[0], t.y[0]) for t in params.data if t.error_y.array}
    assert means["lora"] == pytest.approx((20, 0.885))
    assert any(s.y0 == pytest.approx(0.905) for s in params.layout.shapes)  # full FT reference
    sweep = next(t for t in figures["strategy_freeze_sst2"].data if t.mode == "lines+markers")
    assert list(sweep.x) == [0, 1]  # lora (its own strategy) is not a point of the sweep
    change = {t.name: t for t in figures["strategy_weight_change_sst2"].data if t.name}
    assert set(change) == {"full", "freeze1", "lora"}
    assert np.isnan(change["freeze1"].y[0])  # a frozen layer has no point on the log axis


def test_dashboard_strategies_page_draws_the_figures(tmp_path: Path) -> None:
    from tests.test_dashboard import _manifest, _write_run
    from tests.test_dashboard_pages import _app

    manifest = _manifest("strategies", "complete", {"train": "complete"}, {"train": {"jobs": []}})
    _write_run(tmp_path, "s/20260101-000000", manifest, {"training": _strategy_training_table()})
    at = _app(tmp_path, ["s/20260101-000000"], "views/strategies.py")
    assert "Fine-tuning strategies" in [t.value for t in at.title]
    assert len(at.get("plotly_chart")) == 3  # params, freeze sweep, weight change
