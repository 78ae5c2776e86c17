"""Capture speed: probe.capture vs a bare ``model(**batch, output_hidden_states=True)`` loop.

Both read the same sentences (UD English EWT dev by default) with the same model and the same
batch token budget. Rows:

* ``bare loop, file order`` — what one writes by hand: batches of consecutive sentences, padded to
  the longest, all hidden states returned (no pooling, nothing stored);
* ``bare loop, bucketed`` — the same loop over probe's length-bucketed batches (isolates the cost
  of hooks, pooling and writing from the gain of bucketing);
* ``probe.capture_words`` — hooks on every layer, first-subword pooling, float16 output.

Usage: ``python benchmarks/bench_capture.py [--sentences N] [--repeats R]``
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from rich.console import Console
from rich.table import Table

from probe.capture import _special_ids, capture_words, plan_batches, tokenize_words
from probe.data import load_task
from probe.models import load_encoder


def bare_loop(model, tokenizer, sentences, batches) -> int:
    """Tokenize each batch as a hand-written loop would, forward with all hidden states."""
    n_tokens = 0
    with torch.inference_mode():
        for batch in batches:
            enc = tokenizer(
                [list(sentences[i]) for i in batch],
                is_split_into_words=True,
                padding=True,
                truncation=True,
                return_tensors="pt",
            )
            out = model(**enc, output_hidden_states=True)
            n_tokens += int(enc["attention_mask"].sum())
            assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    return n_tokens


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:minilm")
    parser.add_argument("--sentences", type=int, default=None, help="cap (default: all of dev)")
    parser.add_argument("--batch-tokens", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    encoder = load_encoder(args.model)
    model, tokenizer = encoder.model, encoder.tokenizer
    sentences = load_task("upos", limit={"dev": args.sentences}).splits["dev"].sentences
    layers = list(range(encoder.n_layers + 1))

    pieces = tokenize_words(tokenizer, sentences)
    prefix, suffix = _special_ids(tokenizer)
    plan = plan_batches(
        pieces,
        max_tokens=model.config.max_position_embeddings,
        batch_tokens=args.batch_tokens,
        pooling="first",
        n_special=len(prefix) + len(suffix),
    )
    # File-order batches of the same sizes as a hand-written loop with a fixed batch size.
    batch_size = max(1, round(len(sentences) / len(plan.batches)))
    file_order = [
        range(i, min(i + batch_size, len(sentences))) for i in range(0, len(sentences), batch_size)
    ]
    # With no sentence over the limit, window i is sentence i.
    assert len(plan.windows) == len(sentences), "a sentence needed windows; use a shorter set"
    bucketed = [list(b) for b in plan.batches]

    bare_loop(model, tokenizer, sentences, file_order[:2])  # warm-up
    rows = []
    t_file = timed(lambda: bare_loop(model, tokenizer, sentences, file_order), args.repeats)
    rows.append(("bare loop, file order", t_file, plan.padding_share_unsorted))
    t_bucket = timed(lambda: bare_loop(model, tokenizer, sentences, bucketed), args.repeats)
    rows.append(("bare loop, bucketed", t_bucket, plan.padding_share))
    t_probe = timed(
        lambda: capture_words(
            model,
            tokenizer,
            sentences,
            layers=layers,
            pooling="first",
            batch_tokens=args.batch_tokens,
        ),
        args.repeats,
    )
    rows.append(("probe.capture_words", t_probe, plan.padding_share))

    n_tokens = sum(len(w.token_ids) + 2 for w in plan.windows)
    table = Table(
        title=f"capture, {args.model}, {len(sentences)} sentences, {n_tokens} tokens, "
        f"{len(layers)} layers, {torch.get_num_threads()} threads "
        f"(best of {args.repeats})"
    )
    for column in ("method", "seconds", "tokens/s", "padding share", "time vs bare file order"):
        table.add_column(column, justify="right")
    for name, seconds, padding in rows:
        table.add_row(
            name,
            f"{seconds:.2f}",
            f"{n_tokens / seconds:,.0f}",
            f"{padding:.1%}",
            f"{seconds / t_file:.2f}x",
        )
    Console().print(table)
    print(
        f"target: probe.capture_words <= 1.10x the bare loop: "
        f"{'met' if t_probe <= 1.10 * t_file else 'NOT met'} ({t_probe / t_file:.2f}x); "
        f"overhead vs bare bucketed loop {t_probe / t_bucket:.2f}x"
    )


if __name__ == "__main__":
    main()
