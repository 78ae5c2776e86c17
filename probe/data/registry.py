"""Dataset registry: resolve a dataset name and split to a local file.

Every dataset the toolkit reads is registered here with, for each split, the file name, the
canonical public address of the file (a raw GitHub URL at a pinned commit, as recorded in the
dataset's ``SOURCE.md``) and the SHA-256 of its content. Resolution order:

1. ``$PROBE_DATA_DIR/<name>/<file>`` when ``PROBE_DATA_DIR`` is set (CI points it at a folder of
   real copies);
2. the user cache ``$PROBE_CACHE_DIR/data/<name>/<file>`` (default ``~/.cache/probe``);
3. a download from the canonical address into the cache, verified against the checksum. The
   download goes to a temporary file that is renamed only once the checksum matches, so the cache
   never holds a partial or corrupt file.

Anything that goes wrong raises :class:`probe.errors.DataError` with a one-line message.

Checksums are of the *content*: for a gzip file (the UD EWT train split is stored gzipped in the
shared data folder, while upstream serves it uncompressed) :func:`file_sha256` hashes the
decompressed bytes, so a compressed and an uncompressed copy of the same data have the same hash,
and the activation cache keyed on it is shared between them.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import io
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

from probe.errors import DataError

__all__ = [
    "DATASETS",
    "DataFile",
    "DatasetInfo",
    "cache_dir",
    "dataset_dir",
    "dataset_file",
    "dataset_info",
    "download_file",
    "file_sha256",
    "normalize_split",
    "open_text",
    "require_content",
]

T = TypeVar("T")

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
# Users and other corpora say "valid"/"validation"/"trial" for what this toolkit calls "dev"
# (one meaning per word); accept those spellings everywhere a split is named.
_SPLIT_ALIASES = {"valid": "dev", "validation": "dev", "trial": "dev", "val": "dev"}


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset.

    Parameters
    ----------
    names : tuple of str
        Accepted file names inside the dataset folder, in order of preference. The first is the
        name a download is saved under; later ones are alternatives such as a gzipped copy.
    url : str
        Canonical public address of the file (raw GitHub URL at a pinned commit).
    sha256 : str
        SHA-256 of the file's content (of the decompressed bytes for a ``.gz`` copy).
    """

    names: tuple[str, ...]
    url: str
    sha256: str


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: its files per split and where they come from.

    Parameters
    ----------
    name : str
        Registry name, also the folder name under ``$PROBE_DATA_DIR``.
    description : str
        One line saying what the dataset is.
    license : str
        License as stated upstream (see the dataset's ``SOURCE.md``).
    splits : Mapping[str, DataFile]
        Split name (``train``, ``dev``, ``test``) to file. Several splits may share one file
        (SICK keeps all three splits in ``SICK.txt``).
    note : str
        Anything a user should know (missing splits, how a split is selected).
    """

    name: str
    description: str
    license: str
    splits: Mapping[str, DataFile]
    note: str = ""
    files: tuple[DataFile, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unique: dict[str, DataFile] = {}
        for f in self.splits.values():
            unique.setdefault(f.names[0], f)
        object.__setattr__(self, "files", tuple(unique.values()))


def _gh(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


_UD = ("UniversalDependencies/UD_English-EWT", "15d613d8447b3478787d4c278730a1e48a945efb")
_UNER = ("UniversalNER/UNER_English-EWT", "8ed072de2fd24022cc62458997fe96a8fe191ea4")
_CONLL = ("kamalkraj/BERT-NER", "e5be564156f194f1becb0d82aeaf6e762d9eb9ed")
_SEMEVAL = (
    "SeoSangwoo/Attention-Based-BiLSTM-relation-extraction",
    "02c0000c5aebd9e5de8cc360d2ef45bdb7c29030",
)
_STSB = ("amao0o0/SynWMD", "59042a92e862db58bd01e47914345d2f52d2a4a3")
_SICK = ("kkalouli/SICK-processing", "0848f4aec60870122a4ca18de08ba0e25f6f9a75")
_SST2 = ("eyalbd2/Reproducing-AutoPrompt", "6288fb5bec9c572f2492875ae0111df5b6daed11")
_WIKI = ("pytorch/examples", "77f55b912142e11fcfdf5b530231fb9c52f181e8")

_SICK_FILE = DataFile(
    ("SICK.txt",),
    _gh(*_SICK, "SICK.txt"),
    "1539c2d059809b5bd40694e26d8121cc85b6b496f91c7b40f2fc83bbd7dcd957",
)

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo(
            name="ud_english_ewt",
            description="Universal Dependencies English EWT r2.16 (CoNLL-U): UPOS, XPOS, trees",
            license="CC BY-SA 4.0",
            splits={
                "train": DataFile(
                    ("en_ewt-ud-train.conllu", "en_ewt-ud-train.conllu.gz"),
                    _gh(*_UD, "en_ewt-ud-train.conllu"),
                    "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",
                ),
                "dev": DataFile(
                    ("en_ewt-ud-dev.conllu", "en_ewt-ud-dev.conllu.gz"),
                    _gh(*_UD, "en_ewt-ud-dev.conllu"),
                    "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",
                ),
                "test": DataFile(
                    ("en_ewt-ud-test.conllu", "en_ewt-ud-test.conllu.gz"),
                    _gh(*_UD, "en_ewt-ud-test.conllu"),
                    "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",
                ),
            },
        ),
        DatasetInfo(
            name="uner_english_ewt",
            description="Universal NER v1 English EWT (IOB2: PER, ORG, LOC)",
            license="CC BY-SA 4.0",
            splits={
                "dev": DataFile(
                    ("en_ewt-ud-dev.iob2",),
                    _gh(*_UNER, "en_ewt-ud-dev.iob2"),
                    "0cafd881cf31d39897b6d588420fab8fbbe4423d271725c59921ac9dd49c0713",
                ),
                "test": DataFile(
                    ("en_ewt-ud-test.iob2",),
                    _gh(*_UNER, "en_ewt-ud-test.iob2"),
                    "821ad826d5f503ac03b4edc3fbc2174f21fbb005ec25863caf2051c434616d6e",
                ),
            },
            note="dev and test only: the final UNER train file is not available here",
        ),
        DatasetInfo(
            name="conll2003_en",
            description="CoNLL-2003 English NER (IOB2: PER, ORG, LOC, MISC)",
            license="Reuters RCV1-derived; research use only, do not redistribute",
            splits={
                "train": DataFile(
                    ("train.txt",),
                    _gh(*_CONLL, "data/train.txt"),
                    "213953b5522fb7924802d883e50f027b2c6ffb5d4d0e63368ed82909f9b60423",
                ),
                "dev": DataFile(
                    ("valid.txt",),
                    _gh(*_CONLL, "data/valid.txt"),
                    "c02eb19809eafb83998326a0481942eb37d96f31826ae387cfe8773699969f5b",
                ),
                "test": DataFile(
                    ("test.txt",),
                    _gh(*_CONLL, "data/test.txt"),
                    "dc4ac7f3d6d01a6bec59261814561da3b287b6b493b97d1f69c580b52ec1831b",
                ),
            },
        ),
        DatasetInfo(
            name="semeval2010_task8",
            description="SemEval-2010 Task 8 relation classification (19 directed labels)",
            license="CC BY 3.0",
            splits={
                "train": DataFile(
                    ("TRAIN_FILE.TXT",),
                    _gh(
                        *_SEMEVAL,
                        "SemEval2010_task8_all_data/SemEval2010_task8_training/TRAIN_FILE.TXT",
                    ),
                    "c22fee88957d245a4b1650c6743eb8c594dcdeffc6a2aa1fa6cced059eebf0e3",
                ),
                "test": DataFile(
                    ("TEST_FILE_FULL.TXT",),
                    _gh(
                        *_SEMEVAL,
                        "SemEval2010_task8_all_data/SemEval2010_task8_testing_keys/"
                        "TEST_FILE_FULL.TXT",
                    ),
                    "9ec7a35d5582b4da0fb72aa55a6121bc414ade573459e1dcf68bf189f8c18ae8",
                ),
            },
            note="train and test only; test is TEST_FILE_FULL.TXT (directed gold labels)",
        ),
        DatasetInfo(
            name="stsbenchmark",
            description="STS Benchmark (English), gold similarity 0-5",
            license="scores CC BY-SA 4.0; sentences keep their source licenses",
            splits={
                split: DataFile(
                    (f"sts-{split}.csv",),
                    _gh(
                        *_STSB,
                        f"data/downstream/STS/STSBenchmark/stsbenchmark/sts-{split}.csv",
                    ),
                    sha,
                )
                for split, sha in [
                    ("train", "0f71910b59aa1ad973c5897f0791f3b0965a92b8f82b1a95f3eea9f4162fda82"),
                    ("dev", "5d7e944d8b02734b07bfdb5df67db3420c64bed153fcaa1ba47ad03480cf4234"),
                    ("test", "affe45928a66ee5a708531233c95b7dacbbdc57f974f002a3d32ea0180cf816a"),
                ]
            },
        ),
        DatasetInfo(
            name="sick",
            description="SICK relatedness (SICK-R, gold 1-5) and entailment",
            license="CC BY-NC-SA 3.0 (non-commercial)",
            splits={"train": _SICK_FILE, "dev": _SICK_FILE, "test": _SICK_FILE},
            note="one file; splits are the SemEval_set column: TRAIN, TRIAL (= dev), TEST",
        ),
        DatasetInfo(
            name="sst2_glue",
            description="GLUE SST-2 binary sentiment",
            license="unspecified; research use",
            splits={
                "train": DataFile(
                    ("train.tsv",),
                    _gh(*_SST2, "glue_data/SST-2/train_full.tsv"),
                    "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
                ),
                "dev": DataFile(
                    ("dev.tsv",),
                    _gh(*_SST2, "glue_data/SST-2/dev.tsv"),
                    "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
                ),
                "test": DataFile(
                    ("test.tsv",),
                    _gh(*_SST2, "glue_data/SST-2/test.tsv"),
                    "69a938605609b3e6663b4487918fe1565eb293734e6e520d0366d1d412fd2a13",
                ),
            },
            note="test is unlabeled (GLUE hides its labels)",
        ),
        DatasetInfo(
            name="wikitext2",
            description="WikiText-2 v1 (tokenized, with <unk>) raw text",
            license="CC BY-SA",
            splits={
                "dev": DataFile(
                    ("valid.txt",),
                    _gh(*_WIKI, "word_language_model/data/wikitext-2/valid.txt"),
                    "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
                ),
                "test": DataFile(
                    ("test.txt",),
                    _gh(*_WIKI, "word_language_model/data/wikitext-2/test.txt"),
                    "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
                ),
            },
            note="valid (= dev) and test only: the train file is not available here",
        ),
    ]
}


def dataset_info(name: str) -> DatasetInfo:
    """Return the registry entry of ``name``; unknown names raise with the nearest suggestion.

    Examples
    --------
    >>> sorted(dataset_info("sick").splits)
    ['dev', 'test', 'train']
    """
    try:
        return DATASETS[name]
    except KeyError:
        near = difflib.get_close_matches(str(name), list(DATASETS), n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(sorted(DATASETS))}"
        raise DataError(f"unknown dataset {name!r}; {hint}") from None


def normalize_split(split: str) -> str:
    """Map split spellings ``valid``/``validation``/``trial``/``val`` to ``dev``.

    >>> normalize_split("valid")
    'dev'
    """
    return _SPLIT_ALIASES.get(split.lower(), split.lower())


def cache_dir() -> Path:
    """Return the user cache root: ``$PROBE_CACHE_DIR`` or ``~/.cache/probe``."""
    env = os.environ.get("PROBE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "probe"


def _data_dir_env() -> Path | None:
    env = os.environ.get("PROBE_DATA_DIR")
    return Path(env).expanduser() if env else None


def dataset_dir(name: str) -> Path:
    """Return the folder holding dataset ``name`` (without downloading anything).

    ``$PROBE_DATA_DIR/<name>/`` when it exists, else the cache folder
    ``<cache_dir()>/data/<name>/`` (which may not exist yet; :func:`dataset_file` fills it).
    """
    dataset_info(name)
    env = _data_dir_env()
    if env is not None and (env / name).is_dir():
        return env / name
    return cache_dir() / "data" / name


def _find(folder: Path, spec: DataFile) -> Path | None:
    for fname in spec.names:
        if (folder / fname).is_file():
            return folder / fname
    return None


def dataset_file(
    name: str, split: str, *, download: bool | None = None, verify: bool = False
) -> Path:
    """Return the local path of one split of a dataset, downloading it into the cache if needed.

    Parameters
    ----------
    name : str
        Registered dataset name (see :data:`DATASETS`).
    split : str
        ``train``, ``dev`` or ``test`` (``valid``/``validation``/``trial`` mean ``dev``).
    download : bool, optional
        If False, never touch the network; a file missing locally raises. Default: True unless
        the environment variable ``PROBE_OFFLINE=1`` is set.
    verify : bool
        Also check the SHA-256 of a file found locally (downloads are always checked).

    Returns
    -------
    Path
        An existing file (possibly gzipped: open it with :func:`open_text`).

    Raises
    ------
    DataError
        Unknown name or split, checksum mismatch, or the file is neither local nor downloadable.
    """
    info = dataset_info(name)
    split_n = normalize_split(split)
    if split_n not in info.splits:
        raise DataError(
            f"dataset {name!r} has no split {split!r}; it has {', '.join(info.splits)}"
            + (f" ({info.note})" if info.note else "")
        )
    spec = info.splits[split_n]
    env = _data_dir_env()
    cached = cache_dir() / "data" / name
    for folder in ([env / name] if env is not None else []) + [cached]:
        found = _find(folder, spec)
        if found is not None:
            if verify:
                _check_sha(found, spec.sha256)
            return found
    where = f"$PROBE_DATA_DIR ({env})" if env is not None else "$PROBE_DATA_DIR (unset)"
    hint = f"set PROBE_DATA_DIR to a folder holding {name}/"
    if download is None:
        download = os.environ.get("PROBE_OFFLINE") != "1"
    if not download:
        raise DataError(
            f"dataset {name!r} not found in {where} or the cache ({cached}) and downloading is "
            f"off; {hint}"
        )
    try:
        return download_file(spec.url, cached / spec.names[0], spec.sha256)
    except DataError as exc:
        raise DataError(
            f"dataset {name!r} not found in {where} and could not be downloaded ({exc}); {hint}"
        ) from exc


def download_file(url: str, dest: Path, sha256: str, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, verifying its SHA-256; never leave a partial file.

    The bytes go to a temporary file next to ``dest`` that is renamed onto ``dest`` (atomic on
    one filesystem) only after the checksum matched; on any failure it is removed.

    Raises
    ------
    DataError
        Network failure or checksum mismatch (message is one line, without the hint).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                while chunk := resp.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DataError(f"{url}: {reason}") from exc
        got = digest.hexdigest()
        if got != sha256:
            raise DataError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _open_bytes(path: Path) -> IO[bytes]:
    # Decide by magic bytes rather than suffix so a renamed file still reads correctly.
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def open_text(path: str | Path) -> io.StringIO:
    """Read a UTF-8 text file (gzip decompressed transparently) into a stream of its lines.

    Universal newlines are on, so CRLF files (SemEval, SICK) read as ``\\n``-terminated lines.
    The whole file is read and decoded here, so a bad byte is reported with its line (a decoding
    error in the middle of a reader's loop would name neither file nor line) and a truncated
    gzip file is a :class:`DataError`, not an ``EOFError``.

    Raises
    ------
    DataError
        ``FILE:LINE:`` of the first byte that is not UTF-8; a truncated or corrupt gzip file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        with _open_bytes(path) as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(
            f"{path}: truncated or corrupt gzip file ({exc}); replace it with a complete copy"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(
            f"{path}:{line}: byte 0x{data[exc.start]:02x} (column {column}) is not UTF-8; "
            "save the file as UTF-8"
        ) from None
    return io.StringIO(text, newline=None)


def require_content(items: list[T], path: str | Path, what: str) -> list[T]:
    """``items`` read from ``path``, or a :class:`DataError` when the file gave none.

    An empty or comment-only split would otherwise only fail after capture and fitting.
    """
    if not items:
        with open_text(path) as f:
            n_lines = sum(1 for _ in f)
        raise DataError(
            f"{path}:{max(n_lines, 1)}: no {what} in the file (it is empty or holds only "
            "comments and blank lines); replace it with the dataset's real file"
        )
    return items


def file_sha256(path: str | Path) -> str:
    """Return the hex SHA-256 of a file's content, streamed (decompressed first if gzip).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"; _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    digest = hashlib.sha256()
    try:
        with _open_bytes(path) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(
            f"{path}: truncated or corrupt gzip file ({exc}); replace it with a complete copy"
        ) from None
    return digest.hexdigest()


def _check_sha(path: Path, expected: str) -> None:
    got = file_sha256(path)
    if got != expected:
        raise DataError(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {got}; "
            "replace the file with the registered version"
        )
