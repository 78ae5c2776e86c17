"""Layer capture: forward hooks on every layer, length-bucketed batching, subword -> word pooling.

Hook points (a documented contract; pinned by ``tests/test_capture.py``):

=====================  ==========================================  ===========================
name                   module                                      output shape
=====================  ==========================================  ===========================
``embed``              the embedding block (after LayerNorm)        (batch, seq, d_model)
``layers.{l}.output``  encoder layer ``l`` for ``l`` in 1..L        (batch, seq, d_model)
=====================  ==========================================  ===========================

Layer ``0`` is ``embed`` and layer ``l >= 1`` is ``layers.{l}.output``, so captured layer ``l``
equals ``hidden_states[l]`` of ``model(..., output_hidden_states=True)``.

Sentences longer than the model's limit are cut into overlapping windows; every word takes its
vectors from the window in which it has the most context on both sides, so nothing is truncated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from probe.errors import StudyError
from probe.runtime import autocast

__all__ = [
    "BatchPlan",
    "capture_layers",
    "capture_words",
    "hook_points",
    "plan_batches",
    "position_limit",
    "tokenize_words",
    "word_prefix",
]


def _base_model(model: nn.Module) -> nn.Module:
    return getattr(model, "base_model", model)


def _embedding_output(base: nn.Module) -> nn.Module:
    """The module whose output is ``hidden_states[0]``.

    ELECTRA projects small embeddings up to ``hidden_size`` (``embeddings_project``) and ALBERT
    does the same inside its encoder (``embedding_hidden_mapping_in``); the encoder's first
    hidden state is the projected one, so that projection is layer 0.
    """
    if hasattr(base, "embeddings_project"):
        return base.embeddings_project
    if hasattr(base, "encoder") and hasattr(base.encoder, "embedding_hidden_mapping_in"):
        return base.encoder.embedding_hidden_mapping_in
    return base.embeddings


def _encoder_layers(base: nn.Module, n_layers: int) -> list[nn.Module] | None:
    """The module producing each of ``hidden_states[1..L]``, in order (may repeat a module)."""
    encoder = getattr(base, "encoder", None)
    if encoder is not None and hasattr(encoder, "albert_layer_groups"):
        # ALBERT shares weights: layer i runs layer group i // (L / n_groups), so one module
        # produces several layers (the formula is AlbertTransformer.forward's).
        groups = encoder.albert_layer_groups
        return [groups[int(i / (n_layers / len(groups)))] for i in range(n_layers)]
    if encoder is not None and hasattr(encoder, "layer"):
        layers = list(encoder.layer)
        if getattr(encoder, "conv", None) is not None:
            # DeBERTa-v2 with conv_kernel_size > 0 adds a convolution of the embeddings to the
            # first layer's output; hidden_states[1] is the ConvLayer's output.
            layers[0] = encoder.conv
        return layers
    transformer = getattr(base, "transformer", None)
    if transformer is not None and hasattr(transformer, "layer"):
        return list(transformer.layer)  # DistilBERT
    return None


def hook_points(model: nn.Module) -> dict[str, nn.Module]:
    """Map hook names (``embed``, ``layers.{l}.output``) to the modules that produce them.

    Works for BERT-style encoders (``embeddings`` + ``encoder.layer``: BERT, RoBERTa, XLM-R,
    DeBERTa-v2), ELECTRA (layer 0 is the projected embedding), DistilBERT
    (``transformer.layer``) and ALBERT, whose layers share weights: there several names map to
    the same module, and :func:`capture_layers` tells the layers apart by call order.
    """
    base = _base_model(model)
    n_layers = int(getattr(base.config, "num_hidden_layers", getattr(base.config, "n_layers", 0)))
    layers = _encoder_layers(base, n_layers) if hasattr(base, "embeddings") else None
    if layers is None:
        raise TypeError(
            f"{type(model).__name__} is not a BERT-style encoder (needs .embeddings and "
            ".encoder.layer); capture supports BERT, RoBERTa, DistilBERT, ELECTRA, ALBERT and "
            "DeBERTa-v2 models"
        )
    points: dict[str, nn.Module] = {"embed": _embedding_output(base)}
    for index, layer in enumerate(layers, start=1):
        points[f"layers.{index}.output"] = layer
    return points


def _layer_hook_name(layer: int) -> str:
    return "embed" if layer == 0 else f"layers.{layer}.output"


@contextmanager
def capture_layers(model: nn.Module, layers: Sequence[int]) -> Iterator[dict[int, torch.Tensor]]:
    """Record the output of each layer in ``layers`` (0 = embeddings) during forward passes.

    Yields a dict that every forward pass overwrites: ``store[l]`` of shape
    (batch, seq, d_model). Hooks are removed on exit, also when the body raises.

    A module that produces several layers (ALBERT's shared layer group) runs once per layer in
    a forward pass; its ``k``-th call is the ``k``-th of the layers it produces. The call count
    restarts whenever layer 0 runs, which happens once at the start of every forward pass.
    """
    points = hook_points(model)
    names = list(points)
    store: dict[int, torch.Tensor] = {}
    handles = []
    for layer in layers:
        if _layer_hook_name(layer) not in points:
            raise ValueError(f"layer {layer} out of range 0..{len(points) - 1}")
    wanted = set(layers)
    # Per distinct module: the layer number of each of its calls, in call order.
    produces: dict[int, list[int]] = {}
    modules: dict[int, nn.Module] = {}
    for number, name in enumerate(names):
        produces.setdefault(id(points[name]), []).append(number)
        modules[id(points[name])] = points[name]
    calls = dict.fromkeys(produces, 0)

    def make_hook(key: int) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            numbers = produces[key]
            number = numbers[calls[key] % len(numbers)]
            calls[key] += 1
            if number in wanted:
                # Some encoders return (hidden, attention, ...) tuples from a layer.
                store[number] = output[0] if isinstance(output, tuple) else output  # type: ignore[index]

        return hook

    def restart(_module: nn.Module, _inputs: object) -> None:
        for key in calls:
            calls[key] = 0

    try:
        handles.append(points["embed"].register_forward_pre_hook(restart))
        for key, module in modules.items():
            if wanted.intersection(produces[key]):
                handles.append(module.register_forward_hook(make_hook(key)))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def position_limit(model: nn.Module) -> int:
    """Longest input (special tokens included) the model's position embeddings allow.

    RoBERTa-style models (RoBERTa, XLM-R) number positions from ``padding_idx + 1``, so of their
    ``max_position_embeddings`` (514) only 512 are usable; BERT uses all of them.
    """
    config = _base_model(model).config
    limit = int(getattr(config, "max_position_embeddings", 512))
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return limit


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Window:
    """One model input: a slice of a sentence's subwords plus the words it is responsible for."""

    token_ids: tuple[int, ...]  # without special tokens
    keep_positions: tuple[int, ...]  # positions (within token_ids) whose vectors are pooled
    keep_words: tuple[int, ...]  # global word index of each kept position


@dataclass(frozen=True)
class BatchPlan:
    """Length-bucketed batches of windows, ready to run.

    ``batches`` lists window indices per batch; the padding shares compare the plan with batches of
    the same sizes taken in the original sentence order.
    """

    windows: tuple[_Window, ...]
    batches: tuple[tuple[int, ...], ...]
    n_words: int
    padding_share_unsorted: float
    padding_share: float


_PROBE_WORDS = ("Probing", "words")


def word_prefix(tokenizer: object) -> str:
    """What to put before each word so that pre-split words tokenize as in running text.

    WordPiece and SentencePiece (Metaspace) tokenizers mark word starts themselves: ``""``.
    A byte-level BPE tokenizer (RoBERTa, GPT-2 style) encodes the space *inside* the next token
    (``Ġwords``); fed pre-split words without ``add_prefix_space`` it would tokenize every word as
    if glued to the previous one, and in transformers 5 it does so silently. Such tokenizers get
    a leading space on every word, which is what ``add_prefix_space=True`` does.

    Raises
    ------
    ValueError
        The tokenizer splits pre-split words differently from running text either way, so word
        vectors would not be those of the sentence the model normally sees.
    """

    def ids(words: Sequence[str]) -> list[int]:
        return tokenizer(  # type: ignore[operator]
            list(words), is_split_into_words=True, add_special_tokens=False
        )["input_ids"]

    def text(sentence: str) -> list[int]:
        return tokenizer(sentence, add_special_tokens=False)["input_ids"]  # type: ignore[operator]

    if ids(_PROBE_WORDS) == text(" ".join(_PROBE_WORDS)):
        return ""
    if ids([" " + w for w in _PROBE_WORDS]) == text(" " + " ".join(_PROBE_WORDS)):
        return " "
    raise ValueError(
        f"{type(tokenizer).__name__} tokenizes pre-split words differently from running text; "
        "word alignment supports WordPiece, SentencePiece and byte-level BPE tokenizers"
    )


def tokenize_words(tokenizer: object, sentences: Sequence[Sequence[str]]) -> list[list[list[int]]]:
    """Subword ids of every word of every sentence, shape ``[sentence][word][subword]``.

    The subwords are those of the sentence as running text (words joined by spaces), for
    WordPiece, SentencePiece and byte-level BPE tokenizers alike (see :func:`word_prefix`).
    A word the tokenizer maps to nothing (e.g. a lone zero-width character) gets the unknown
    token, so that every word has at least one subword and hence a vector.
    """
    if not sentences:
        return []
    prefix = word_prefix(tokenizer)
    encoded = tokenizer(  # type: ignore[operator]
        [[prefix + w for w in s] for s in sentences],
        is_split_into_words=True,
        add_special_tokens=False,
        verbose=False,  # long sentences are windowed below; the length warning is noise
    )
    unk = tokenizer.unk_token_id  # type: ignore[attr-defined]
    result = []
    for index, words in enumerate(sentences):
        pieces: list[list[int]] = [[] for _ in words]
        for token_id, word_id in zip(
            encoded["input_ids"][index], encoded.word_ids(index), strict=True
        ):
            if word_id is not None:
                pieces[word_id].append(token_id)
        result.append([p or [unk] for p in pieces])
    return result


def _windows_for_sentence(
    pieces: list[list[int]], first_word: int, max_tokens: int, stride: int, pooling: str
) -> list[_Window]:
    lengths = [len(p) for p in pieces]
    starts = np.concatenate([[0], np.cumsum(lengths)])  # token start of each word
    n_tokens = int(starts[-1])
    flat = [t for p in pieces for t in p]
    if n_tokens <= max_tokens:
        spans = [(0, n_tokens)]
    else:
        spans, begin = [], 0
        while True:
            spans.append((begin, min(begin + max_tokens, n_tokens)))
            if begin + max_tokens >= n_tokens:
                break
            begin += stride
    # Assign each word to the window where it has the most context on its poorer side.
    owner = np.full(len(pieces), -1)
    best = np.full(len(pieces), -np.inf)
    for w_index, (lo, hi) in enumerate(spans):
        inside = (starts[:-1] >= lo) & (starts[1:] <= hi)
        context = np.minimum(starts[:-1] - lo, hi - starts[1:]).astype(float)
        better = inside & (context > best)
        owner[better], best[better] = w_index, context[better]
    if (owner < 0).any():
        longest = max(lengths)
        raise StudyError(
            f"capture.max_length: a word has {longest} word pieces, more than a window holds "
            f"({max_tokens} after the special tokens); raise capture.max_length"
        )
    windows = []
    for w_index, (lo, hi) in enumerate(spans):
        positions, words = [], []
        for word in np.flatnonzero(owner == w_index):
            token_range = range(int(starts[word]) - lo, int(starts[word + 1]) - lo)
            chosen = {"first": token_range[:1], "last": token_range[-1:], "mean": token_range}[
                pooling
            ]
            positions.extend(chosen)
            words.extend([first_word + int(word)] * len(chosen))
        windows.append(_Window(tuple(flat[lo:hi]), tuple(positions), tuple(words)))
    return windows


def _padding_share(lengths: np.ndarray, batches: Sequence[Sequence[int]]) -> float:
    real = padded = 0
    for batch in batches:
        batch_lengths = lengths[list(batch)]
        real += int(batch_lengths.sum())
        padded += int(batch_lengths.max()) * len(batch)
    return 1.0 - real / padded if padded else 0.0


def plan_batches(
    pieces: list[list[list[int]]],
    *,
    max_tokens: int,
    batch_tokens: int,
    pooling: str,
    stride: int | None = None,
    n_special: int = 2,
) -> BatchPlan:
    """Cut sentences into windows and group windows of similar length into batches.

    Parameters
    ----------
    pieces : subword ids per word per sentence (from :func:`tokenize_words`).
    max_tokens : the model's sequence limit including special tokens.
    batch_tokens : budget of padded tokens per batch (``batch_size * longest``).
    pooling : ``first``, ``last`` or ``mean`` subword -> word.
    stride : window shift for long sentences; default half a window.
    """
    if pooling not in ("first", "last", "mean"):
        raise ValueError(f"pooling must be first, last or mean, got {pooling!r}")
    content = max_tokens - n_special
    stride = stride or max(1, content // 2)
    windows: list[_Window] = []
    first_word = 0
    for sentence in pieces:
        windows.extend(_windows_for_sentence(sentence, first_word, content, stride, pooling))
        first_word += len(sentence)
    lengths = np.array([len(w.token_ids) + n_special for w in windows])

    def greedy(order: Sequence[int]) -> list[tuple[int, ...]]:
        batches, current, longest = [], [], 0
        for index in order:
            longest_if_added = max(longest, int(lengths[index]))
            if current and longest_if_added * (len(current) + 1) > batch_tokens:
                batches.append(tuple(current))
                current, longest_if_added = [], int(lengths[index])
            current.append(index)
            longest = longest_if_added
        if current:
            batches.append(tuple(current))
        return batches

    # Longest first: the first batch hits peak memory at once, so an out-of-memory fails fast.
    bucketed = greedy(np.argsort(-lengths, kind="stable").tolist())
    unsorted = greedy(range(len(windows)))
    return BatchPlan(
        windows=tuple(windows),
        batches=tuple(bucketed),
        n_words=first_word,
        padding_share_unsorted=_padding_share(lengths, unsorted),
        padding_share=_padding_share(lengths, bucketed),
    )


# --------------------------------------------------------------------------- running


def _special_ids(tokenizer: object) -> tuple[list[int], list[int]]:
    """Special tokens the tokenizer puts before and after a single sequence ([CLS] / [SEP])."""
    # Tokenizers differ in how they expose this (transformers 5 dropped
    # build_inputs_with_special_tokens), so compare one word encoded with and without specials.
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    built = tokenizer("a", add_special_tokens=True)["input_ids"]  # type: ignore[operator]
    cut = next(i for i in range(len(built)) if built[i : i + len(bare)] == bare)
    return built[:cut], built[cut + len(bare) :]


def capture_words(
    model: nn.Module,
    tokenizer: object,
    sentences: Sequence[Sequence[str]],
    *,
    layers: Sequence[int],
    pooling: str = "first",
    batch_tokens: int = 8192,
    max_length: int | None = None,
    stride: int | None = None,
    precision: str = "auto",
    out: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, BatchPlan]:
    """Word vectors of every sentence at every requested layer.

    Returns
    -------
    features : array of shape (len(layers), n_words, d_model), float16; words of all sentences
        concatenated in order (sentence ``i`` owns rows ``offsets[i]:offsets[i+1]``). Written into
        ``out`` (e.g. a memory map) when given.
    plan : the batch plan, with padding statistics.
    """
    device = next(model.parameters()).device
    limit = max_length or position_limit(model)
    prefix, suffix = _special_ids(tokenizer)
    pieces = tokenize_words(tokenizer, sentences)
    plan = plan_batches(
        pieces,
        max_tokens=limit,
        batch_tokens=batch_tokens,
        pooling=pooling,
        stride=stride,
        n_special=len(prefix) + len(suffix),
    )
    d_model = int(model.config.hidden_size)
    if out is None:
        out = np.zeros((len(layers), plan.n_words, d_model), dtype=np.float16)
    pad_id = tokenizer.pad_token_id or 0  # type: ignore[attr-defined]
    model.eval()
    with capture_layers(model, layers) as store, torch.inference_mode():
        for batch in plan.batches:
            windows = [plan.windows[i] for i in batch]
            width = max(len(w.token_ids) for w in windows) + len(prefix) + len(suffix)
            ids = np.full((len(windows), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(windows), width), dtype=np.int64)
            rows, words = [], []
            for row, window in enumerate(windows):
                sequence = [*prefix, *window.token_ids, *suffix]
                ids[row, : len(sequence)] = sequence
                mask[row, : len(sequence)] = 1
                rows.extend(row * width + len(prefix) + p for p in window.keep_positions)
                words.extend(window.keep_words)
            input_ids = torch.from_numpy(ids).to(device, non_blocking=True)
            attention_mask = torch.from_numpy(mask).to(device, non_blocking=True)
            with autocast(device, precision):
                model(input_ids=input_ids, attention_mask=attention_mask)
            flat_rows = torch.tensor(rows, device=device)
            word_rows, local = np.unique(np.asarray(words), return_inverse=True)
            stacked = torch.stack([store[layer].reshape(-1, d_model) for layer in layers])
            gathered = stacked[:, flat_rows].float()  # (n_layers, n_kept, d_model)
            if pooling == "mean":
                index = torch.from_numpy(local).to(device)
                summed = torch.zeros(len(layers), len(word_rows), d_model, device=device)
                summed.index_add_(1, index, gathered)
                counts = torch.bincount(index, minlength=len(word_rows)).clamp_min(1)
                pooled = summed / counts[None, :, None]
            else:
                pooled = gathered  # one token per word, already in word order of `words`
                word_rows = np.asarray(words)
            out[:, word_rows] = pooled.to(torch.float16).cpu().numpy()
            if progress is not None:
                progress(len(word_rows))
    return out, plan
