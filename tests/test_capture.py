"""Hook names are a contract: layer l equals hidden_states[l]; hooks never outlive a capture."""

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertModel

from probe.capture import capture_layers, capture_words, hook_points, plan_batches, tokenize_words
from probe.models import load_encoder
from tests.conftest import minilm_path, tiny_config

SENTENCES = [
    ["The", "cat", "sat", "on", "the", "mat", "."],
    ["Unbelievably", ",", "tokenisation", "splits", "words"],
    ["Hi"],
]


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


@pytest.fixture(scope="module")
def tiny() -> tuple[BertModel, object]:
    torch.manual_seed(0)
    return BertModel(tiny_config()).eval(), AutoTokenizer.from_pretrained(minilm_path())


def test_hook_names_and_shapes_are_pinned(tiny: tuple) -> None:
    model, _ = tiny
    assert list(hook_points(model)) == ["embed", "layers.1.output", "layers.2.output"]
    ids = torch.tensor([[101, 7592, 2088, 102]])
    with capture_layers(model, [0, 1, 2]) as store, torch.no_grad():
        model(input_ids=ids)
    assert {layer: tuple(t.shape) for layer, t in store.items()} == {
        0: (1, 4, 32),
        1: (1, 4, 32),
        2: (1, 4, 32),
    }


@pytest.mark.parametrize("spec", ["tiny", "minilm"])
def test_captured_layer_l_equals_hidden_states_l_exactly(tiny: tuple, spec: str) -> None:
    if spec == "tiny":
        model, tokenizer = tiny
    else:
        encoder = load_encoder("embedded:minilm")
        model, tokenizer = encoder.model, encoder.tokenizer
    batch = tokenizer(
        ["A short one .", "And a somewhat longer second sentence here ."],
        return_tensors="pt",
        padding=True,
    )
    n_layers = model.config.num_hidden_layers
    with torch.no_grad():
        reference = model(**batch, output_hidden_states=True).hidden_states
        with capture_layers(model, range(n_layers + 1)) as store:
            model(**batch)
    assert len(reference) == n_layers + 1
    for layer in range(n_layers + 1):
        assert torch.equal(store[layer], reference[layer]), f"layer {layer} differs"


def test_hooks_are_removed_even_when_the_forward_pass_fails(tiny: tuple) -> None:
    model, _ = tiny
    before = _hook_count(model)
    with pytest.raises(RuntimeError), capture_layers(model, [0, 1, 2]):
        assert _hook_count(model) == before + 3
        raise RuntimeError("boom")
    assert _hook_count(model) == before


@pytest.mark.parametrize("pooling", ["first", "last", "mean"])
def test_word_pooling_matches_a_per_sentence_reference(tiny: tuple, pooling: str) -> None:
    model, tokenizer = tiny
    feats, _ = capture_words(
        model, tokenizer, SENTENCES, layers=[0, 2], pooling=pooling, batch_tokens=40
    )
    row = 0
    for words in SENTENCES:
        enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states
        word_ids = enc.word_ids(0)
        for w in range(len(words)):
            positions = [i for i, wid in enumerate(word_ids) if wid == w]
            chosen = {"first": positions[:1], "last": positions[-1:], "mean": positions}[pooling]
            for k, layer in enumerate([0, 2]):
                expected = hidden[layer][0, chosen].mean(0).numpy()
                np.testing.assert_allclose(
                    feats[k, row].astype(np.float32), expected, atol=2e-3, rtol=2e-3
                )
            row += 1
    assert row == feats.shape[1]


def test_long_sentences_use_sliding_windows_not_truncation(tiny: tuple) -> None:
    model, tokenizer = tiny  # max_position_embeddings = 64
    long_sentence = [f"word{i % 7}" for i in range(150)]  # ~300 subwords
    feats, plan = capture_words(model, tokenizer, [long_sentence], layers=[2], pooling="first")
    assert feats.shape == (1, 150, 32)
    assert len(plan.windows) > 1
    # Every word got a vector from a window in which it has context on both sides (no zeros).
    assert np.all(np.abs(feats).sum(-1) > 0)
    # A word in the middle of window 2 equals the same word computed on exactly that window.
    pieces = tokenize_words(tokenizer, [long_sentence])[0]
    window = plan.windows[1]
    ids = torch.tensor([[101, *window.token_ids, 102]])
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[2][0]
    mid = len(window.keep_words) // 2
    word, position = window.keep_words[mid], window.keep_positions[mid]
    assert sum(len(p) for p in pieces[:word]) > 0
    np.testing.assert_allclose(
        feats[0, word].astype(np.float32), hidden[position + 1].numpy(), atol=2e-3, rtol=2e-3
    )


def test_length_bucketing_cuts_padding() -> None:
    rng = np.random.default_rng(0)
    pieces = [[[1]] * int(n) for n in rng.integers(3, 60, size=300)]
    plan = plan_batches(pieces, max_tokens=128, batch_tokens=1024, pooling="first")
    assert plan.padding_share < 0.1 < plan.padding_share_unsorted
    assert sorted(i for b in plan.batches for i in b) == list(range(300))


def test_words_the_tokenizer_drops_still_get_a_vector(tiny: tuple) -> None:
    model, tokenizer = tiny
    feats, _ = capture_words(model, tokenizer, [["a", "\u200b", "b"]], layers=[1])
    assert feats.shape[1] == 3 and np.abs(feats[0, 1]).sum() > 0


def test_local_folder_spec_loads_like_a_hub_model(tiny_model_dir: Path) -> None:
    encoder = load_encoder(str(tiny_model_dir))
    assert (encoder.n_layers, encoder.d_model) == (2, 32)


def test_pretraining_heads_load_quietly_and_missing_encoder_weights_warn(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import warnings

    from transformers import BertForPreTraining

    from probe.models import ModelSource, load_model

    pretrained, no_pooler = tmp_path / "pretrain", tmp_path / "no-pooler"
    BertForPreTraining(tiny_config()).save_pretrained(pretrained)
    BertModel(tiny_config(), add_pooling_layer=False).save_pretrained(no_pooler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_model(ModelSource(spec=str(pretrained), path=str(pretrained)), BertModel)
        assert not caught  # the MLM/NSP heads (cls.*) are dropped on purpose
        assert "LOAD REPORT" not in capsys.readouterr().err
        load_model(ModelSource(spec=str(no_pooler), path=str(no_pooler)), BertModel)
    assert len(caught) == 1 and "left randomly initialised (pooler.dense.bias" in str(
        caught[0].message
    )
