"""Tests of the data layer: readers on tiny fixtures, the registry, probing tasks, real data."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from probe.data import (
    DATASETS,
    SEMEVAL_LABELS,
    DataFile,
    DatasetInfo,
    dataset_dir,
    dataset_file,
    download_file,
    file_sha256,
    iob2_spans,
    load_task,
    read_conll2003,
    read_conllu,
    read_documents,
    read_iob2,
    read_ner,
    read_semeval,
    read_sick,
    read_sst2,
    read_sts,
    read_stsb,
    word_types,
)
from probe.errors import DataError, ProbeError

_UPOS = [
    "ADJ",
    "ADP",
    "ADV",
    "AUX",
    "CCONJ",
    "DET",
    "INTJ",
    "NOUN",
    "NUM",
    "PART",
    "PRON",
    "PROPN",
    "PUNCT",
    "SCONJ",
    "SYM",
    "VERB",
    "X",
]
REAL_DATA = Path(
    os.environ.get("PROBE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data"
)

# --------------------------------------------------------------------------- fixtures (strings)

CONLLU = """\
# sent_id = s1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
4.1\tknow\t_\t_\t_\t_\t_\t_\t4:conj\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = s2
1\tMy\tmy\tPRON\tPRP$\t_\t2\tnmod:poss\t_\t_
2\tdog\tdog\tNOUN\tNN\t_\t0\troot\t_\t_
"""

UNER = """\
# sent_id = a-0001
# text = I love New York
1\tI\tO\t-\t-
2\tlove\tO\t-\t-
3\tNew\tB-LOC\t-\tann
4\tYork\tI-LOC\t-\tann

# sent_id = a-0002
1\tHello\tO\t-\t-
"""

CONLL2003 = """\
-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

Nothing NN B-NP O
"""

SEMEVAL = (
    '1\t"The system has an arrayed <e1>configuration</e1> of antenna <e2>elements</e2>."\r\n'
    "Component-Whole(e2,e1)\r\n"
    "Comment: Not a collection.\r\n"
    "\r\n"
    '213\t"It had a <e1>duel</e1> of doves<e2>moles</e2>, numbering 22."\r\n'
    "Member-Collection(e2,e1)\r\n"
    "Comment:\r\n"
    "\r\n"
    '7\t"The <e1>New York</e1> <e2>office</e2> closed."\r\n'
    "Other\r\n"
    "Comment:\r\n"
    "\r\n"
)

# WikiText lines carry a leading and a trailing space; blank lines are a single space.
WIKITEXT = (
    "\n".join(
        f" {line} " if line else " "
        for line in [
            "",
            "= Homarus gammarus =",
            "",
            "Homarus gammarus is a lobster . It grows to 3 @.@ 5 kg ! Really ?",
            "",
            "= = Description = =",
            "",
            "H. gammarus is blue .",
            "",
            "= Second article =",
            "",
            "Only one sentence here .",
        ]
    )
    + "\n"
)


def _write(path: Path, text: str, *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the cache at a temp folder and unset PROBE_DATA_DIR: nothing real is found."""
    monkeypatch.delenv("PROBE_DATA_DIR", raising=False)
    monkeypatch.setenv("PROBE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


# --------------------------------------------------------------------------- CoNLL-U


def test_conllu_skips_multiword_tokens_and_empty_nodes(tmp_path: Path) -> None:
    sents = read_conllu(_write(tmp_path / "x.conllu", CONLLU))
    assert len(sents) == 2
    s = sents[0]
    assert s.sent_id == "s1" and s.text == "I don't know."
    assert s.words == ("I", "do", "n't", "know", ".")
    assert s.upos == ("PRON", "AUX", "PART", "VERB", "PUNCT")
    assert s.xpos == ("PRP", "VBP", "RB", "VB", ".")
    assert s.heads == (4, 4, 4, 0, 4)
    assert sents[1].deprels == ("nmod:poss", "root")
    assert isinstance(s.words, tuple)


def test_conllu_gzip_reads_like_plain_and_hashes_the_same(tmp_path: Path) -> None:
    plain = _write(tmp_path / "a.conllu", CONLLU)
    packed = _write(tmp_path / "a.conllu.gz", CONLLU, gz=True)
    assert read_conllu(packed) == read_conllu(plain)
    assert file_sha256(packed) == file_sha256(plain) == hashlib.sha256(CONLLU.encode()).hexdigest()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2\tdog\tdog\tNOUN\tNN\t_\t0\troot", "expected 10 tab-separated"),
        ("2\tdog\tdog\tNOUN\tNN\t_\tx\troot\t_\t_", "HEAD 'x' is not an integer"),
        ("2\tdog\tdog\tNOUN\tNN\t_\t9\troot\t_\t_", "HEAD 9 is outside"),
        ("5\tdog\tdog\tNOUN\tNN\t_\t0\troot\t_\t_", "should be 2"),
    ],
)
def test_conllu_malformed_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    text = "# sent_id = x\n1\tMy\tmy\tPRON\tPRP$\t_\t2\tnmod:poss\t_\t_\n" + line + "\n"
    path = _write(tmp_path / "bad.conllu", text)
    with pytest.raises(DataError, match=message) as info:
        read_conllu(path)
    assert f"{path}:3:" in str(info.value)
    assert "\n" not in str(info.value)


def test_conllu_reader_rejects_a_conll2003_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.txt", CONLL2003)
    with pytest.raises(DataError, match=r"train\.txt:1: .*is this a CoNLL-U file"):
        read_conllu(path)


# --------------------------------------------------------------------------- NER


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["B-PER", "I-PER", "O"], [(0, 2, "PER")]),
        (["O", "I-LOC", "I-LOC"], [(1, 3, "LOC")]),  # I- without B- starts an entity
        (["B-LOC", "B-LOC"], [(0, 1, "LOC"), (1, 2, "LOC")]),  # adjacent entities
        (["B-ORG", "I-PER", "I-PER"], [(0, 1, "ORG"), (1, 3, "PER")]),  # type change
        (["O", "O"], []),
        (["I-MISC"], [(0, 1, "MISC")]),  # entity at the end of the sentence
    ],
)
def test_iob2_spans(tags: list[str], spans: list[tuple[int, int, str]]) -> None:
    assert iob2_spans(tags) == spans


def test_read_iob2_uner_format(tmp_path: Path) -> None:
    sents = read_iob2(_write(tmp_path / "x.iob2", UNER))
    assert [s.sent_id for s in sents] == ["a-0001", "a-0002"]
    assert sents[0].words == ("I", "love", "New", "York")
    assert sents[0].spans == [(2, 4, "LOC")]
    assert sents[1].spans == []


def test_read_iob2_wrong_columns_and_bad_tag(tmp_path: Path) -> None:
    bad_cols = _write(tmp_path / "a.iob2", "1\tI\tO\t-\n")
    with pytest.raises(DataError, match=r"a\.iob2:1: expected 5"):
        read_iob2(bad_cols)
    bad_tag = _write(tmp_path / "b.iob2", "# c\n1\tI\tO\t-\t-\n2\tx\tX-PER\t-\t-\n")
    with pytest.raises(DataError, match=r"b\.iob2:3: 'X-PER' is not an IOB tag"):
        read_iob2(bad_tag)


def test_read_conll2003_skips_docstart(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.txt", CONLL2003)
    sents = read_conll2003(path)
    assert [s.words[0] for s in sents] == ["EU", "Peter", "Nothing"]
    assert sents[0].spans == [(0, 1, "ORG"), (2, 3, "MISC")]
    assert sents[1].spans == [(0, 2, "PER")]
    assert read_ner(path) == sents
    with pytest.raises(DataError, match=r"train2\.txt:2: expected 4 space-separated"):
        read_conll2003(_write(tmp_path / "train2.txt", "EU NNP B-NP B-ORG\nrejects O\n"))


# --------------------------------------------------------------------------- SemEval


def test_semeval_spans_align_with_words_after_markup_removal(tmp_path: Path) -> None:
    ex = read_semeval(_write(tmp_path / "TRAIN_FILE.TXT", SEMEVAL))
    assert [e.id for e in ex] == ["1", "213", "7"]
    first = ex[0]
    assert first.label == "Component-Whole(e2,e1)"
    assert first.words[slice(*first.e1)] == ("configuration",)
    assert first.words[slice(*first.e2)] == ("elements",)
    assert first.words[-1] == "."
    # markup glued to a word still separates the two words
    assert ex[1].words[slice(*ex[1].e2)] == ("moles",)
    assert ex[1].words[ex[1].e2[0] - 1] == "doves"
    assert ex[2].words[slice(*ex[2].e1)] == ("New", "York") and ex[2].e2 == (3, 4)
    assert len(SEMEVAL_LABELS) == 19 and "Other" in SEMEVAL_LABELS


def test_semeval_rejects_unknown_label_and_unlabeled_file(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.txt", SEMEVAL.replace("Other", "Cause-Effect"))
    with pytest.raises(DataError, match=r"bad\.txt:10: 'Cause-Effect' is not one of the 19"):
        read_semeval(bad)
    clean = _write(tmp_path / "clean.txt", '8001\t"The <e1>a</e1> and <e2>b</e2>."\n8002\t"x"\n')
    with pytest.raises(DataError, match=r"clean\.txt:2: .*not one of the 19"):
        read_semeval(clean)
    one_entity = _write(tmp_path / "one.txt", '1\t"The <e1>a</e1> and b."\nOther\n')
    with pytest.raises(DataError, match=r"one\.txt:1: .*exactly one <e1> and one <e2>"):
        read_semeval(one_entity)


# --------------------------------------------------------------------------- STS, SICK, SST-2


def test_stsb_extra_columns_and_stray_quotes_do_not_merge_lines(tmp_path: Path) -> None:
    text = (
        'main-news\tsrc\t2012\t0001\t4.5\tHe said "yes.\tHe agreed.\tlicense\tsource\n'
        "main-news\tsrc\t2012\t0002\t0.000\tA cat.\tA dog.\n"
    )
    pairs = read_stsb(_write(tmp_path / "sts-dev.csv", text))
    assert [(p.sentence1, p.sentence2, p.score) for p in pairs] == [
        ('He said "yes.', "He agreed.", 4.5),
        ("A cat.", "A dog.", 0.0),
    ]
    with pytest.raises(DataError, match=r"sts-bad\.csv:1: expected at least 7"):
        read_stsb(_write(tmp_path / "sts-bad.csv", "a\tb\tc\n"))


def test_sick_dev_is_the_trial_set(tmp_path: Path) -> None:
    header = "pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tSemEval_set"
    rows = ["1\tA\tB\tNEUTRAL\t4.5\tTRAIN", "2\tC\tD\tNEUTRAL\t1.0\tTRIAL", "3\tE\tF\tX\t3\tTEST"]
    path = _write(tmp_path / "SICK.txt", "\r\n".join([header, *rows]) + "\r\n")
    assert [(p.sentence1, p.score) for p in read_sick(path, "dev")] == [("C", 1.0)]
    assert [p.sentence2 for p in read_sick(path, "train")] == ["B"]
    assert [p.score for p in read_sick(path, "test")] == [3.0]
    with pytest.raises(DataError, match="header lacks"):
        read_sick(_write(tmp_path / "other.txt", "a\tb\n"), "train")


def test_sst2_labeled_unlabeled_and_wrong_header(tmp_path: Path) -> None:
    dev = read_sst2(_write(tmp_path / "dev.tsv", "sentence\tlabel\ngood film \t1\nbad \t0\n"))
    assert [(e.sentence, e.label) for e in dev] == [("good film", 1), ("bad", 0)]
    test = read_sst2(_write(tmp_path / "test.tsv", "index\tsentence\n0\tuneasy mix .\n"))
    assert [(e.sentence, e.label) for e in test] == [("uneasy mix .", None)]
    with pytest.raises(DataError, match=r"x\.tsv:1: header"):
        read_sst2(_write(tmp_path / "x.tsv", "a\tb\n"))
    with pytest.raises(DataError, match=r"y\.tsv:2: label '2'"):
        read_sst2(_write(tmp_path / "y.tsv", "sentence\tlabel\nmeh\t2\n"))


# --------------------------------------------------------------------------- raw text


def test_wikitext_articles_and_sentences(tmp_path: Path) -> None:
    docs = read_documents(_write(tmp_path / "wiki.txt", WIKITEXT))
    assert docs == [
        (
            "Homarus gammarus is a lobster .",
            "It grows to 3 @.@ 5 kg !",
            "Really ?",
            "H. gammarus is blue .",
        ),
        ("Only one sentence here .",),
    ]


def test_plain_text_documents_and_folders(tmp_path: Path) -> None:
    _write(tmp_path / "corpus" / "b.txt", "First doc, sentence one.\nSentence two.\n\n\nSecond.\n")
    _write(tmp_path / "corpus" / "sub" / "c.txt", "Third doc.\n")
    _write(tmp_path / "corpus" / "a.txt", WIKITEXT)
    _write(tmp_path / "corpus" / "ignored.md", "not text\n")
    docs = read_documents(tmp_path / "corpus")
    assert [d[0] for d in docs] == [
        "Homarus gammarus is a lobster .",
        "Only one sentence here .",
        "First doc, sentence one.",
        "Second.",
        "Third doc.",
    ]
    assert docs[2] == ("First doc, sentence one.", "Sentence two.")
    with pytest.raises(DataError, match="neither a file, a folder nor a dataset name"):
        read_documents(tmp_path / "missing.txt")


# --------------------------------------------------------------------------- registry


def test_unknown_dataset_suggests_nearest_name(no_env: Path) -> None:
    with pytest.raises(DataError, match="did you mean 'ud_english_ewt'"):
        dataset_file("ud_englsh_ewt", "train")
    with pytest.raises(DataError, match=r"no split 'train'.*dev, test"):
        dataset_file("wikitext2", "train")


def test_registry_urls_are_pinned_raw_github_addresses() -> None:
    assert set(DATASETS) == {
        "ud_english_ewt",
        "uner_english_ewt",
        "conll2003_en",
        "semeval2010_task8",
        "stsbenchmark",
        "sick",
        "sst2_glue",
        "wikitext2",
    }
    for info in DATASETS.values():
        for spec in info.files:
            assert spec.url.startswith("https://raw.githubusercontent.com/")
            commit = spec.url.split("/")[5]
            assert len(commit) == 40 and int(commit, 16) >= 0
            assert len(spec.sha256) == 64


def test_probe_data_dir_wins_and_accepts_gzipped_copy(
    no_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = no_env / "data"
    _write(root / "ud_english_ewt" / "en_ewt-ud-train.conllu.gz", CONLLU, gz=True)
    monkeypatch.setenv("PROBE_DATA_DIR", str(root))
    path = dataset_file("ud_english_ewt", "train", download=False)
    assert path == root / "ud_english_ewt" / "en_ewt-ud-train.conllu.gz"
    assert dataset_dir("ud_english_ewt") == root / "ud_english_ewt"
    # valid/validation are spellings of dev
    _write(root / "wikitext2" / "valid.txt", WIKITEXT)
    assert dataset_file("wikitext2", "validation", download=False).name == "valid.txt"


def _toy_dataset(monkeypatch: pytest.MonkeyPatch, source: Path, sha: str) -> None:
    spec = DataFile(("toy.txt",), source.as_uri(), sha)
    monkeypatch.setitem(DATASETS, "toy", DatasetInfo("toy", "toy", "none", {"train": spec}))


def test_download_verifies_checksum_and_caches(
    no_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _write(no_env / "upstream" / "toy.txt", "hello\n")
    _toy_dataset(monkeypatch, source, hashlib.sha256(b"hello\n").hexdigest())
    path = dataset_file("toy", "train")
    assert path == no_env / "cache" / "data" / "toy" / "toy.txt"
    assert path.read_text() == "hello\n"
    assert os.listdir(path.parent) == ["toy.txt"]  # no temp file left behind
    source.unlink()  # a cached file is used without going back to the source
    assert dataset_file("toy", "train", verify=True) == path


def test_download_checksum_mismatch_leaves_no_file(
    no_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _write(no_env / "upstream" / "toy.txt", "tampered\n")
    _toy_dataset(monkeypatch, source, hashlib.sha256(b"hello\n").hexdigest())
    with pytest.raises(DataError, match="checksum mismatch") as info:
        dataset_file("toy", "train")
    assert "set PROBE_DATA_DIR to a folder holding toy/" in str(info.value)
    assert os.listdir(no_env / "cache" / "data" / "toy") == []
    dest = no_env / "direct" / "toy.txt"
    with pytest.raises(DataError, match="checksum mismatch"):
        download_file(source.as_uri(), dest, "0" * 64)
    assert not dest.exists() and os.listdir(dest.parent) == []


def test_missing_dataset_error_is_one_actionable_line(
    no_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _toy_dataset(monkeypatch, no_env / "nowhere" / "toy.txt", "0" * 64)
    monkeypatch.setenv("PROBE_DATA_DIR", str(no_env / "x" / "y"))
    with pytest.raises(DataError) as info:
        dataset_file("toy", "train")
    msg = str(info.value)
    assert msg.startswith(f"dataset 'toy' not found in $PROBE_DATA_DIR ({no_env / 'x' / 'y'})")
    assert "could not be downloaded (" in msg and msg.endswith("folder holding toy/")
    assert "\n" not in msg and isinstance(info.value, ProbeError)
    with pytest.raises(DataError, match="downloading is off"):
        dataset_file("toy", "train", download=False)


def test_local_file_verification_catches_a_modified_copy(
    no_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = no_env / "data"
    _write(root / "toy" / "toy.txt", "modified\n")
    _toy_dataset(monkeypatch, no_env / "nowhere", hashlib.sha256(b"hello\n").hexdigest())
    monkeypatch.setenv("PROBE_DATA_DIR", str(root))
    assert dataset_file("toy", "train").read_text() == "modified\n"  # not verified by default
    with pytest.raises(DataError, match="checksum mismatch"):
        dataset_file("toy", "train", verify=True)


# --------------------------------------------------------------------------- tasks (tiny data)

UD_TRAIN = CONLLU
UD_DEV = """\
# sent_id = d1
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
2\tthere\tthere\tADV\tRB\t_\t1\tadvmod\t_\t_

# sent_id = d2
1\t42\t42\tNUM\tCD\t_\t0\troot\t_\t_
"""


@pytest.fixture
def tiny_data(no_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = no_env / "data"
    _write(root / "ud_english_ewt" / "en_ewt-ud-train.conllu.gz", UD_TRAIN, gz=True)
    _write(root / "ud_english_ewt" / "en_ewt-ud-dev.conllu", UD_DEV)
    _write(root / "ud_english_ewt" / "en_ewt-ud-test.conllu", UD_DEV)
    uner = "".join(
        f"# sent_id = s{i}\n1\tw{i}\t{'B-PER' if i % 2 else 'O'}\t-\t-\n\n" for i in range(20)
    )
    _write(root / "uner_english_ewt" / "en_ewt-ud-dev.iob2", uner)
    _write(root / "uner_english_ewt" / "en_ewt-ud-test.iob2", UNER)
    monkeypatch.setenv("PROBE_DATA_DIR", str(root))
    return root


def test_word_task_targets_labels_and_unseen_labels(tiny_data: Path) -> None:
    task = load_task("upos")
    assert task.kind == "word" and task.dataset == "ud_english_ewt"
    # train labels sorted first, then labels seen only in dev/test
    assert task.label_names == (
        "AUX",
        "NOUN",
        "PART",
        "PRON",
        "PUNCT",
        "VERB",
        "ADV",
        "INTJ",
        "NUM",
    )
    assert "3 label(s) occur only in dev/test" in task.note
    train = task.splits["train"]
    assert train.targets.dtype == np.int64 and train.targets.shape == (7, 3)
    assert train.targets[:5].tolist() == [[0, i, i + 1] for i in range(5)]
    names = [task.label_names[i] for i in train.labels[:5]]
    assert names == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert train.source.name == "en_ewt-ud-train.conllu.gz"
    with pytest.raises(ValueError):
        train.labels[0] = 1  # read-only: splits may be shared by the parse cache


def test_deprel_pairs_skip_root_and_share_sentences_with_upos(tiny_data: Path) -> None:
    deprel = load_task("deprel")
    upos = load_task("upos")
    train = deprel.splits["train"]
    assert deprel.kind == "pair" and train.targets.shape == (5, 5)
    assert "root" not in deprel.label_names
    # "I" (word 0) depends on "know" (word 3); "My" depends on "dog" in sentence 1
    assert train.targets[0].tolist() == [0, 0, 1, 3, 4]
    assert train.targets[-1].tolist() == [1, 0, 1, 1, 2]
    assert deprel.label_names[train.labels[-1]] == "nmod:poss"
    for split in ("train", "dev", "test"):
        assert deprel.splits[split].sentences == upos.splits[split].sentences
    # the dev sentence "42" has only a root arc, so no target, but it is still a sentence
    assert len(deprel.splits["dev"].sentences) == 2
    assert set(deprel.splits["dev"].targets[:, 0].tolist()) == {0}
    assert word_types(train)[:2] == [("I", "know"), ("do", "know")]


def test_arc_probe_inputs_use_each_word_vector_once(tiny_data: Path) -> None:
    from probe.probes.features import one_word_spans, probe_inputs
    from probe.study import ProbeSection

    deprel = load_task("deprel")
    assert one_word_spans(deprel)
    train = deprel.splits["train"]
    n_words = sum(len(s) for s in train.sentences)
    words = np.random.default_rng(0).normal(size=(2, n_words, 4)).astype(np.float32)
    offsets = np.cumsum([0] + [len(s) for s in train.sentences])
    feats = SimpleNamespace(features=words, offsets=offsets)
    X = probe_inputs(deprel, train, feats, ProbeSection(tasks=["deprel"]))
    # [dependent, head]: 2 x d, not 2 x 3d (mean, first and last of a one-word span coincide)
    assert X.shape == (2, len(train.labels), 8)
    sentence, dep, _, head, _ = train.targets[0]
    np.testing.assert_array_equal(X[:, 0, :4], words[:, offsets[sentence] + dep])
    np.testing.assert_array_equal(X[:, 0, 4:], words[:, offsets[sentence] + head])


def test_limit_keeps_the_first_sentences(tiny_data: Path) -> None:
    task = load_task("xpos", limit={"train": 1, "valid": 0})
    assert task.splits["train"].sentences == (("I", "do", "n't", "know", "."),)
    assert task.splits["dev"].sentences == () and task.splits["dev"].targets.shape == (0, 3)
    assert len(task.splits["test"].sentences) == 2
    with pytest.raises(DataError, match="unknown split 'tran'"):
        load_task("xpos", limit={"tran": 1})
    with pytest.raises(DataError, match="non-negative integer"):
        load_task("xpos", limit={"train": -1})


def test_uner_train_dev_are_a_seeded_partition_of_the_dev_file(tiny_data: Path) -> None:
    a, b, c = (
        load_task("ner_uner", seed=0),
        load_task("ner_uner", seed=0),
        load_task("ner_uner", seed=1),
    )
    train, dev = a.splits["train"].sentences, a.splits["dev"].sentences
    assert len(train) == 16 and len(dev) == 4
    assert sorted(train + dev) == sorted((f"w{i}",) for i in range(20))
    assert train == b.splits["train"].sentences and train != c.splits["train"].sentences
    assert "80%/20%" in a.note and a.kind == "span"
    test = a.splits["test"]
    assert test.targets.tolist() == [[0, 2, 4]] and len(test.sentences) == 2
    assert word_types(test) == [("New", "York")]


def test_unknown_task_suggests_nearest(no_env: Path) -> None:
    with pytest.raises(DataError, match="did you mean 'deprel'"):
        load_task("deprels")


# --------------------------------------------------------------------------- real data


@pytest.fixture
def real(monkeypatch: pytest.MonkeyPatch):
    def need(name: str) -> None:
        if not (REAL_DATA / name).is_dir():
            pytest.skip(f"real data {REAL_DATA / name} missing")
        monkeypatch.setenv("PROBE_DATA_DIR", str(REAL_DATA))

    return need


def test_real_registry_checksums_match_files(real) -> None:
    for name, info in DATASETS.items():
        real(name)
        for spec in info.files:
            path = next(
                (REAL_DATA / name / n for n in spec.names if (REAL_DATA / name / n).is_file()), None
            )
            if path is None:
                pytest.fail(f"{name}: none of {spec.names} in {REAL_DATA / name}")
            assert file_sha256(path) == spec.sha256, path


def test_real_ud_dev_test_counts(real) -> None:
    real("ud_english_ewt")
    for split, n_sent, n_words in [("dev", 2001, 25147), ("test", 2077, 25094)]:
        sents = read_conllu(dataset_file("ud_english_ewt", split))
        assert len(sents) == n_sent
        assert sum(len(s.words) for s in sents) == n_words
        assert all(s.sent_id for s in sents)


def test_real_ud_train_tasks(real) -> None:
    # The only test that parses the 14 MB train file (the parse is cached across the 3 tasks).
    real("ud_english_ewt")
    upos, xpos, deprel = load_task("upos"), load_task("xpos"), load_task("deprel")
    train = upos.splits["train"]
    assert len(train.sentences) == 12544 and train.targets.shape == (204577, 3)
    assert upos.label_names == tuple(sorted(_UPOS))
    # 51 relations with subtypes in train, minus root (skipped): one arc per non-root word
    assert len(deprel.label_names) == 50
    assert deprel.splits["train"].targets.shape == (204577 - 12544, 5)
    for split in ("train", "dev", "test"):
        assert upos.splits[split].sentences == xpos.splits[split].sentences
        assert upos.splits[split].sentences == deprel.splits[split].sentences


def test_real_ner_counts(real) -> None:
    real("conll2003_en")
    real("uner_english_ewt")
    conll = load_task("ner_conll2003")
    expected = {"train": (14041, 23499), "dev": (3250, 5942), "test": (3453, 5648)}
    for split, (n_sent, n_ent) in expected.items():
        s = conll.splits[split]
        assert (len(s.sentences), len(s.labels)) == (n_sent, n_ent)
    counts = np.bincount(conll.splits["train"].labels)
    assert dict(zip(conll.label_names, counts.tolist(), strict=True)) == {
        "LOC": 7140,
        "MISC": 3438,
        "ORG": 6321,
        "PER": 6600,
    }
    uner_test = read_iob2(dataset_file("uner_english_ewt", "test"))
    assert len(uner_test) == 2077 and sum(len(s.words) for s in uner_test) == 25097
    assert sum(len(s.spans) for s in uner_test) == 1088
    uner = load_task("ner_uner")
    assert len(uner.splits["train"].sentences) + len(uner.splits["dev"].sentences) == 2001
    assert uner.label_names == ("LOC", "ORG", "PER")


def test_real_semeval_counts(real) -> None:
    real("semeval2010_task8")
    train = read_semeval(dataset_file("semeval2010_task8", "train"))
    test = read_semeval(dataset_file("semeval2010_task8", "test"))
    assert (len(train), len(test)) == (8000, 2717)
    assert {e.label for e in train} == {e.label for e in test} == set(SEMEVAL_LABELS)
    assert sum(e.label == "Other" for e in train) == 1410
    assert sum(e.label == "Other" for e in test) == 454
    task = load_task("semeval_relations")
    assert task.label_names == SEMEVAL_LABELS
    assert [len(task.splits[s].labels) for s in ("train", "dev", "test")] == [7200, 800, 2717]


def test_real_sts_sick_sst2_counts(real) -> None:
    for name in ("stsbenchmark", "sick", "sst2_glue"):
        real(name)
    assert [len(read_sts("stsbenchmark", s)) for s in ("train", "dev", "test")] == [
        5749,
        1500,
        1379,
    ]
    sick = {s: read_sts("sick", s) for s in ("train", "dev", "test")}
    assert [len(v) for v in sick.values()] == [4439, 495, 4906]
    assert np.mean([p.score for p in sick["train"]]) == pytest.approx(3.516, abs=5e-4)
    sst = {s: read_sst2(dataset_file("sst2_glue", s)) for s in ("train", "dev", "test")}
    assert [len(v) for v in sst.values()] == [67349, 872, 1821]
    assert sum(e.label == 1 for e in sst["train"]) == 37569
    assert all(e.label is None for e in sst["test"])


def test_real_wikitext_articles(real) -> None:
    real("wikitext2")
    valid = read_documents("wikitext2", split="valid")
    assert len(valid) == 60
    assert valid[0][0].startswith("Homarus gammarus , known as the European lobster")
    # sentence splitting loses no token: all tokens of non-heading lines are kept, in order
    raw = dataset_file("wikitext2", "dev").read_text(encoding="utf-8").splitlines()
    body = [t for line in raw if not line.strip().startswith("=") for t in line.split()]
    assert [t for d in valid for s in d for t in s.split()] == body
    assert len(read_documents("wikitext2")) == 60 + 62
