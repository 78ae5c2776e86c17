"""Schema of a task read from the user's own files: a name plus a source (a pure schema leaf).

In a study, ``probe.tasks`` mixes built-in task names and file tasks::

    probe:
      tasks:
        - upos                                   # built-in
        - name: upos_de                          # any CoNLL-U treebank: a folder or files
          format: conllu
          path: data/UD_German-GSD               # *train*/*dev*/*test* files inside
          label: upos                            # upos, xpos, deprel, arcs or feats.<Feature>
        - {name: ner_de, format: iob2, train: de.train.bio, test: de.test.bio}
        - {name: srl, format: edge_probing, path: data/srl}   # jiant edge-probing JSON lines
        - {name: sentiment, format: tsv, path: data/sent.tsv, text: sentence, label: label}

A ``path`` folder is searched for one file per split, recognised by ``train``, ``dev`` (or
``valid``/``validation``/``development``/``val``/``trial``) and ``test`` in its name; a ``path``
file is all the data. Missing splits are carved out of train (seeded by the study's seed; the
task's note says how). Relative paths are relative to the working directory.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from probe._schema import StrictModel

__all__ = ["CONLLU_LABELS", "FORMATS", "FileTask", "PairFile"]

FORMATS = ("conllu", "iob2", "edge_probing", "tsv", "jsonl")
#: ``label`` of a CoNLL-U task; ``feats.<Feature>`` (e.g. ``feats.Number``) is also accepted.
CONLLU_LABELS = ("upos", "xpos", "deprel", "arcs")


class FileTask(StrictModel):
    """A probing task read from files: what the files are, where they are, what to predict."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    format: Literal["conllu", "iob2", "edge_probing", "tsv", "jsonl"]
    path: str | None = None
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    label: str | None = None
    text: str = "sentence"

    @model_validator(mode="after")
    def _consistent(self) -> FileTask:
        files = [s for s in ("train", "dev", "test") if getattr(self, s) is not None]
        if self.path is None and "train" not in files:
            raise ValueError(
                f"task {self.name!r} needs `path:` (a file or a folder of split files) or at "
                "least `train:`"
            )
        if self.path is not None and files:
            raise ValueError(
                f"task {self.name!r}: give either `path:` or `train:`/`dev:`/`test:`, not both"
            )
        if self.format == "conllu":
            ok = self.label in CONLLU_LABELS or (
                self.label is not None and self.label.startswith("feats.") and len(self.label) > 6
            )
            if not ok:
                raise ValueError(
                    f"task {self.name!r}: label {self.label!r} is not one of "
                    f"{', '.join(CONLLU_LABELS)} or feats.<Feature> (e.g. feats.Number)"
                )
        elif self.format in ("iob2", "edge_probing") and self.label is not None:
            raise ValueError(
                f"task {self.name!r}: a {self.format} file carries its labels; drop `label:`"
            )
        if self.format not in ("tsv", "jsonl") and self.text != "sentence":
            raise ValueError(f"task {self.name!r}: `text:` names a column of tsv/jsonl files only")
        return self

    @property
    def label_column(self) -> str:
        """The label column of a tsv/jsonl file (``label`` unless set)."""
        return self.label or "label"


class PairFile(StrictModel):
    """Scored sentence pairs from a TSV (with header) or JSONL file, for the ``embeddings``
    stage's STS evaluation: ``{name: my_sts, format: tsv, path: pairs.tsv}`` with columns
    ``sentence1``, ``sentence2`` and ``score`` unless renamed."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    format: Literal["tsv", "jsonl"]
    path: str | None = None
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    text1: str = "sentence1"
    text2: str = "sentence2"
    score: str = "score"

    @model_validator(mode="after")
    def _consistent(self) -> PairFile:
        files = [s for s in ("train", "dev", "test") if getattr(self, s) is not None]
        if self.path is None and not files:
            raise ValueError(f"pairs {self.name!r} need `path:` or `train:`/`dev:`/`test:` files")
        if self.path is not None and files:
            raise ValueError(
                f"pairs {self.name!r}: give either `path:` or `train:`/`dev:`/`test:`, not both"
            )
        return self
