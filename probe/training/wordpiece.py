"""A WordPiece vocabulary learned deterministically, wrapped as a fast BERT tokenizer.

Normalisation, pre-tokenisation, the WordPiece model (greedy longest match), the ``[CLS] A [SEP]
B [SEP]`` template and the decoder all come from the ``tokenizers`` library. Only the vocabulary
*learning* is written here: the library's ``WordPieceTrainer`` (BPE merges on ``##``-prefixed
pieces) breaks ties between equally frequent merges by hash-map order, which is randomised per
process, so two trainings on the same text give different vocabularies (checked with tokenizers
0.23: even the token *sets* differ) and a pretraining run would not be reproducible from its seed.
The learner below is the same algorithm with ties broken by the pieces' spelling.

Algorithm (BPE as in the library's WordPiece trainer): start from the characters of every word
(non-initial characters carry the ``##`` continuation prefix); repeatedly merge the most frequent
adjacent pair (count >= ``min_frequency``, ties: smallest ``(left, right)``) into one piece
(``a`` + ``##b`` -> ``ab``), until the vocabulary (special tokens + characters + merges) has
``vocab_size`` entries or no pair is frequent enough.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import pairwise

__all__ = ["SPECIAL_TOKENS", "learn_wordpiece_vocab", "wordpiece_tokenizer"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_PREFIX = "##"


def _join(left: str, right: str) -> str:
    return left + right.removeprefix(_PREFIX)


def _merge_pair(pieces: list[str], pair: tuple[str, str], merged: str) -> list[str]:
    """``pieces`` with every occurrence of ``pair`` (left to right) replaced by ``merged``."""
    out: list[str] = []
    k = 0
    while k < len(pieces):
        if k + 1 < len(pieces) and (pieces[k], pieces[k + 1]) == pair:
            out.append(merged)
            k += 2
        else:
            out.append(pieces[k])
            k += 1
    return out


def learn_wordpiece_vocab(
    word_counts: dict[str, int],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    special_tokens: Iterable[str] = SPECIAL_TOKENS,
) -> list[str]:
    """Learn a WordPiece vocabulary from word frequencies (deterministic).

    Parameters
    ----------
    word_counts : frequency of each pre-tokenized, normalised word.
    vocab_size : target size, special tokens and characters included.
    min_frequency : a merge needs a pair seen at least this often.

    Returns
    -------
    list of str
        Special tokens, then characters (initial, then ``##`` continuations; sorted), then
        merged pieces in merge order.

    Examples
    --------
    >>> vocab = learn_wordpiece_vocab({"low": 5, "lower": 2, "lowest": 2}, 16)
    >>> vocab[5:12]  # characters: word-initial, then continuations
    ['l', '##e', '##o', '##r', '##s', '##t', '##w']
    >>> vocab[12:]  # merges; "##o ##w" and "l ##o" tie at 9: the smaller pair goes first
    ['##ow', 'low', 'lowe', '##st']
    """
    words = sorted(word_counts)
    counts = [word_counts[w] for w in words]
    symbols = [[w[0], *(_PREFIX + c for c in w[1:])] for w in words]
    vocab = list(dict.fromkeys(special_tokens))
    initial = sorted({s[0] for s in symbols})
    continuation = sorted({p for s in symbols for p in s[1:]})
    vocab += [p for p in initial + continuation if p not in vocab]
    known = set(vocab)

    pair_count: dict[tuple[str, str], int] = defaultdict(int)
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, pieces in enumerate(symbols):
        for pair in pairwise(pieces):
            pair_count[pair] += counts[i]
            where[pair].add(i)
    # Max-heap by count, then smallest (left, right); stale entries are skipped when popped.
    heap = [(-c, pair) for pair, c in pair_count.items()]
    heapq.heapify(heap)

    while len(vocab) < vocab_size and heap:
        negative, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -negative:
            continue  # stale
        if -negative < min_frequency:
            break
        merged = _join(*pair)
        if merged not in known:
            vocab.append(merged)
            known.add(merged)
        changed: set[tuple[str, str]] = set()
        for i in sorted(where.pop(pair, ())):
            pieces = symbols[i]
            for old in pairwise(pieces):
                pair_count[old] -= counts[i]
                where[old].discard(i)
                changed.add(old)
            out = _merge_pair(pieces, pair, merged)
            symbols[i] = out
            for new in pairwise(out):
                pair_count[new] += counts[i]
                where[new].add(i)
                changed.add(new)
        pair_count.pop(pair, None)
        for p in changed:
            c = pair_count.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_count.pop(p, None)
                where.pop(p, None)
    return vocab


def wordpiece_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int,
    lowercase: bool = True,
    min_frequency: int = 2,
    model_max_length: int = 512,
):
    """Learn a vocabulary on ``texts`` and return a fast ``BertTokenizerFast`` using it."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    normalizer = normalizers.BertNormalizer(
        lowercase=lowercase, strip_accents=None, clean_text=True, handle_chinese_chars=True
    )
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    vocab = learn_wordpiece_vocab(dict(counts), vocab_size, min_frequency=min_frequency)
    ids = {piece: i for i, piece in enumerate(vocab)}
    tokenizer = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.post_processor = processors.BertProcessing(
        ("[SEP]", ids["[SEP]"]), ("[CLS]", ids["[CLS]"])
    )
    tokenizer.decoder = decoders.WordPiece(prefix=_PREFIX)
    return BertTokenizerFast(
        tokenizer_object=tokenizer, do_lower_case=lowercase, model_max_length=model_max_length
    )
