"""Tiny tokenizers of the three subword families and tiny random encoders of six families.

Everything is built in memory (``tokenizers`` trains a tokenizer on a few sentences in
milliseconds), so the tests that use them never download anything.
"""

from __future__ import annotations

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    AlbertConfig,
    AlbertModel,
    BertConfig,
    BertModel,
    DebertaV2Config,
    DebertaV2Model,
    DistilBertConfig,
    DistilBertModel,
    ElectraConfig,
    ElectraModel,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaModel,
)

# German and French running text: umlauts, elisions and long compounds split into many subwords.
CORPUS = [
    "Der Hund schläft im Garten , während die Katze über die Straße läuft .",
    "Unglaublich , wie schnell die Kinder heute Fahrrad fahren !",
    "L' enfant regarde le chat qui dort près de la fenêtre .",
    "Straßenbahnhaltestelle und Donaudampfschifffahrt sind lange Wörter .",
] * 10
SENTENCES = [
    ["Die", "Katze", "schläft", "."],
    ["Unglaublich", ",", "Donaudampfschifffahrt", "!"],
    ["L'", "enfant", "regarde", "la", "fenêtre"],
]
_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _wrap(tokenizer: Tokenizer, cls: str, sep: str, **tokens: str) -> PreTrainedTokenizerFast:
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B {sep}",
        special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, cls_token=cls, sep_token=sep, **tokens
    )


def wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    """BERT-style WordPiece (``##`` continuations), cased."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        CORPUS, trainers.WordPieceTrainer(vocab_size=120, special_tokens=_SPECIALS)
    )
    return _wrap(tok, "[CLS]", "[SEP]", unk_token="[UNK]", pad_token="[PAD]", mask_token="[MASK]")


def unigram_tokenizer() -> PreTrainedTokenizerFast:
    """SentencePiece-style Unigram with ``▁`` word starts (ALBERT, DeBERTa-v2, XLM-R)."""
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=90, special_tokens=_SPECIALS, unk_token="[UNK]")
    tok.train_from_iterator(CORPUS, trainer)
    return _wrap(tok, "[CLS]", "[SEP]", unk_token="[UNK]", pad_token="[PAD]", mask_token="[MASK]")


def byte_bpe_tokenizer() -> PreTrainedTokenizerFast:
    """RoBERTa-style byte-level BPE: the space before a word lives in its first token (``Ġ``)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    return _wrap(tok, "<s>", "</s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


TOKENIZERS = {
    "wordpiece": wordpiece_tokenizer,
    "unigram": unigram_tokenizer,
    "byte_bpe": byte_bpe_tokenizer,
}

_SIZES = {
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


def tiny_model(family: str, vocab_size: int = 400, seed: int = 0) -> PreTrainedModel:
    """A tiny random encoder of ``family`` (3 layers, 32 wide), in eval mode."""
    builders = {
        "bert": lambda: BertModel(BertConfig(vocab_size=vocab_size, **_SIZES)),
        "roberta": lambda: RobertaModel(RobertaConfig(vocab_size=vocab_size, **_SIZES)),
        "distilbert": lambda: DistilBertModel(
            DistilBertConfig(
                vocab_size=vocab_size,
                dim=32,
                n_layers=3,
                n_heads=2,
                hidden_dim=64,
                max_position_embeddings=64,
            )
        ),
        # Embeddings narrower than the hidden size: layer 0 is the projection's output.
        "electra": lambda: ElectraModel(
            ElectraConfig(vocab_size=vocab_size, embedding_size=16, **_SIZES)
        ),
        # Shared layers: one layer group serves all three layers.
        "albert": lambda: AlbertModel(
            AlbertConfig(vocab_size=vocab_size, embedding_size=16, **_SIZES)
        ),
        "albert_2groups": lambda: AlbertModel(
            AlbertConfig(vocab_size=vocab_size, embedding_size=16, num_hidden_groups=2, **_SIZES)
        ),
        "deberta_v2": lambda: DebertaV2Model(DebertaV2Config(vocab_size=vocab_size, **_SIZES)),
        # deberta-v2-xlarge style: a convolution joins the first layer's output.
        "deberta_v2_conv": lambda: DebertaV2Model(
            DebertaV2Config(vocab_size=vocab_size, conv_kernel_size=3, **_SIZES)
        ),
    }
    torch.manual_seed(seed)
    return builders[family]().eval()


FAMILIES = (
    "bert",
    "roberta",
    "distilbert",
    "electra",
    "albert",
    "albert_2groups",
    "deberta_v2",
    "deberta_v2_conv",
)
