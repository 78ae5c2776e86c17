"""Tasks from the user's own files: every format, carved splits, loud errors with file:line, and
the file route giving exactly the built-in tasks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from probe.data import (
    FileTask,
    PairFile,
    load_file_task,
    load_pair_file,
    load_task,
    read_edge_probing,
    read_file_task,
    read_sentence_labels,
    read_sentence_pairs,
    read_tagged,
    task_files,
    word_types,
)
from probe.errors import DataError
from tests.own_data import OWN

UD_DE = OWN / "ud_german_tiny"


def _task(**fields: object) -> FileTask:
    return FileTask.model_validate({"name": "t", **fields})


# --------------------------------------------------------------------------- formats


def test_conllu_folder_finds_train_and_test_and_carves_dev_seeded() -> None:
    task = _task(format="conllu", path=str(UD_DE), label="upos")
    assert set(task_files(task)) == {"train", "test"}
    data = load_file_task(task, seed=3)
    sizes = {s: len(sp.sentences) for s, sp in data.splits.items()}
    assert sizes == {"train": 54, "dev": 6, "test": 20}  # dev = 10% of the 60 train sentences
    assert "seed=3" in data.note and "de_tiny-ud-train.conllu" in data.note
    again = load_file_task(task, seed=3)
    other = load_file_task(task, seed=4)
    train, dev = data.splits["train"].sentences, data.splits["dev"].sentences
    assert again.splits["dev"].sentences == data.splits["dev"].sentences
    assert other.splits["dev"].sentences != data.splits["dev"].sentences
    # train and dev together are the train file
    file_sentences = [s.words for s in read_file_task(task)["train"][1]]
    assert sorted(train + dev) == sorted(file_sentences)


def test_conllu_feature_task_keeps_only_words_with_the_feature() -> None:
    data = load_file_task(_task(format="conllu", path=str(UD_DE), label="feats.Gender"))
    assert data.kind == "word" and data.label_names == ("Fem", "Masc", "Neut")
    split = data.splits["test"]
    # Gender is on articles and nouns only: 4 of the 7 words of every template sentence.
    assert len(split.labels) == 4 * len(split.sentences)
    words = {w for w in word_types(split)}
    assert "." not in words and "sieht" not in words


def test_conllu_deprel_and_arcs_are_pairs_with_balanced_negatives() -> None:
    deprel = load_file_task(_task(format="conllu", path=str(UD_DE), label="deprel"))
    assert deprel.kind == "pair" and "nsubj" in deprel.label_names
    arcs = load_file_task(_task(format="conllu", path=str(UD_DE), label="arcs"), seed=1)
    split = arcs.splits["train"]
    names = np.asarray(arcs.label_names)[split.labels]
    assert (names == "arc").sum() == (names == "no_arc").sum() == len(deprel.splits["train"].labels)
    heads = {}
    for s in read_file_task(_task(format="conllu", path=str(UD_DE), label="arcs"))["train"][1]:
        heads[s.words] = s.heads
    for row, name in zip(split.targets.tolist(), names, strict=True):
        si, dep, _, other, _ = row
        is_head = heads[split.sentences[si]][dep] == other + 1
        assert is_head == (name == "arc")  # a negative is never the true head, nor the word


def test_iob2_file_gives_entity_spans() -> None:
    sents = read_tagged(OWN / "ner_de.train.bio")
    assert sents[0].words[:2] == ("Angela", "Merkel")
    data = load_file_task(
        _task(format="iob2", train=str(OWN / "ner_de.train.bio"), test=str(OWN / "ner_de.test.bio"))
    )
    assert data.kind == "span" and data.label_names == ("LOC", "ORG", "PER")
    assert len(data.splits["train"].labels) == 3 * len(data.splits["train"].sentences)


def test_edge_probing_pairs_and_spans() -> None:
    sents = read_edge_probing(OWN / "edge_relations.train.jsonl")
    assert sents[0].targets[0].span1 == (0, 3) and sents[0].targets[0].span2 == (3, 4)
    data = load_file_task(
        _task(
            format="edge_probing",
            train=str(OWN / "edge_relations.train.jsonl"),
            test=str(OWN / "edge_relations.test.jsonl"),
        )
    )
    assert data.kind == "pair" and data.label_names == ("nsubj", "obj")
    assert data.splits["test"].targets.shape == (40, 5)


def test_edge_probing_single_spans_make_a_span_task(tmp_path: Path) -> None:
    path = tmp_path / "constituents.json"
    lines = [
        {"text": "the old man sleeps", "targets": [{"span1": [0, 3], "label": ["NP"]}]},
        {"text": "a dog barks", "targets": [{"span1": [0, 2], "label": "NP"},
                                            {"span1": [2, 3], "label": "VP"}]},
    ] * 10  # fmt: skip
    path.write_text("\n".join(json.dumps(x) for x in lines))
    data = load_file_task(_task(format="edge_probing", path=str(path)))
    assert data.kind == "span" and data.label_names == ("NP", "VP")
    assert sum(len(s.sentences) for s in data.splits.values()) == 20  # 16/2/2 carved


def test_tsv_and_jsonl_sentence_labels_are_whole_sentence_spans(tmp_path: Path) -> None:
    data = load_file_task(
        _task(format="tsv", path=str(OWN / "subject_number.tsv"), label="subject_number")
    )
    split = data.splits["train"]
    lengths = np.array([len(s) for s in split.sentences])
    assert np.array_equal(split.targets[:, 2] - split.targets[:, 1], lengths)
    assert data.label_names == ("Plur", "Sing")
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text('{"text": "gut so", "y": "pos"}\n{"text": "schlecht", "y": 0}\n')
    assert [x.label for x in read_sentence_labels(jsonl, text="text", label="y")] == ["pos", "0"]


def test_sentence_pairs_read_scores_and_a_test_file_alone_is_carved(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text("a\tb\tsim\nEin Hund .\tEine Katze .\t2.5\n")
    pairs = read_sentence_pairs(path, text1="a", text2="b", score="sim")
    assert pairs[0].score == 2.5 and pairs[0].sentence2 == "Eine Katze ."
    test = tmp_path / "sts-test.jsonl"
    test.write_text("".join(f'{{"s1": "a {i}", "s2": "b {i}", "y": {i % 5}}}\n' for i in range(50)))
    spec = PairFile(name="p", format="jsonl", test=str(test), text1="s1", text2="s2", score="y")
    splits, note = load_pair_file(spec, seed=0)
    assert {s: len(v) for s, v in splits.items()} == {"train": 40, "test": 5, "dev": 5}
    assert "seed=0" in note


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("fmt", "name", "content", "expected"),
    [
        ("conllu", "x-train.conllu", "1\tA\ta\tX\tX\t_\t0\troot\t_\n",
         "x-train.conllu:1: expected 10 tab-separated CoNLL-U columns, got 9"),
        ("conllu", "x-train.conllu", "1\tA\ta\tX\tX\tNumber\t0\troot\t_\t_\n",
         "x-train.conllu:1: FEATS 'Number' is not Feature=Value pairs"),
        ("iob2", "x-train.bio", "A\tB-PER\nB\tI-PER\tX\n",
         "x-train.bio:2: expected 2 columns as on line 1, got 3"),
        ("iob2", "x-train.bio", "A\tPER\n", "x-train.bio:1: 'PER' is not an IOB tag"),
        ("edge_probing", "x-train.json", '{"text": "a b", "targets": []}\n{"text": "a b",\n',
         "x-train.json:2: not a JSON object"),
        ("edge_probing", "x-train.json",
         '{"text": "a b", "targets": [{"span1": [1, 3], "label": "X"}]}\n',
         "x-train.json:1: targets[0]: span1 [1, 3] is not a span of the 2 words"),
        ("edge_probing", "x-train.json",
         '{"text": "a b", "targets": [{"span1": [0, 1], "label": "X"}]}\n'
         '{"text": "a b", "targets": [{"span1": [0, 1], "span2": [1, 2], "label": "X"}]}\n',
         "x-train.json:2: targets[0]: has span2 but the target on line 1 does not"),
        ("tsv", "x-train.tsv", "text\tlabel\nein Satz\tA\n",
         "x-train.tsv:1: no column 'sentence'; the header has 'text', 'label'"),
        ("tsv", "x-train.tsv", "sentence\tlabel\nein Satz\tA\tB\n",
         "x-train.tsv:2: expected 2 tab-separated fields as in the header, got 3"),
    ],
)  # fmt: skip
def test_bad_files_name_file_line_and_what_was_expected(
    tmp_path: Path, fmt: str, name: str, content: str, expected: str
) -> None:
    (tmp_path / name).write_text(content)
    label = "upos" if fmt == "conllu" else None
    with pytest.raises(DataError, match="^" + re.escape(str(tmp_path))) as info:
        read_file_task(_task(format=fmt, path=str(tmp_path), label=label))
    assert expected in str(info.value)


def test_missing_file_and_folder_without_split_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"train file .*nope\.conllu does not exist"):
        task_files(_task(format="conllu", train=str(tmp_path / "nope.conllu"), label="upos"))
    (tmp_path / "README.md").write_text("x")
    with pytest.raises(DataError, match=r"no \.conllu file with train, dev or test in its name"):
        task_files(_task(format="conllu", path=str(tmp_path), label="upos"))


def test_a_feature_no_word_has_fails_naming_the_split() -> None:
    with pytest.raises(DataError, match=r"the train split .* has no targets with feats\.Tense2"):
        load_file_task(_task(format="conllu", path=str(UD_DE), label="feats.Tense2"))


def test_schema_rejects_inconsistent_sources() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs `path:`"):
        _task(format="conllu", label="upos")
    with pytest.raises(ValidationError, match=r"feats\.<Feature>"):
        _task(format="conllu", path="x", label="lemma")
    with pytest.raises(ValidationError, match="carries its labels"):
        _task(format="iob2", path="x", label="ner")


# --------------------------------------------------------------------------- file route = built-in


@pytest.mark.parametrize("label", ["upos", "xpos", "deprel"])
def test_ud_ewt_through_the_file_route_is_the_builtin_task(data_dir: Path, label: str) -> None:
    limit = {"train": 60, "dev": 20, "test": 20}
    builtin = load_task(label, limit=limit)
    own = load_file_task(
        _task(format="conllu", path=str(data_dir / "ud_english_ewt"), label=label), limit=limit
    )
    assert own.kind == builtin.kind and own.label_names == builtin.label_names
    for split in ("train", "dev", "test"):
        a, b = builtin.splits[split], own.splits[split]
        assert a.sentences == b.sentences and a.source == b.source
        assert np.array_equal(a.targets, b.targets) and np.array_equal(a.labels, b.labels)


def test_example_files_are_the_same_bytes_every_time_and_a_missing_one_says_how_to_write_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from probe.data.examples import write_own_data_examples

    again = write_own_data_examples(tmp_path / "again")
    for original in sorted(p for p in OWN.rglob("*") if p.is_file()):
        assert (again / original.relative_to(OWN)).read_bytes() == original.read_bytes()

    monkeypatch.chdir(tmp_path)  # no examples/ here
    task = _task(format="conllu", path="examples/own_data/ud_german_tiny", label="upos")
    with pytest.raises(DataError, match=r"does not exist; write the example files with `probe ex"):
        task_files(task)
    elsewhere = _task(format="iob2", train="mine/train.bio")
    with pytest.raises(DataError, match=r"train file mine/train.bio does not exist$"):
        task_files(elsewhere)
