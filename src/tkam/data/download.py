"""The download engine of ``tkam data download``: HTTP fetch, checksum verification, unpacking and
the copy of files a system package installs (design 6).

Each format module declares its files as :class:`~tkam.data.types.RemoteFile` entries in its
:class:`~tkam.data.types.DatasetInfo` (URLs, official location first, then official mirrors;
the checksums known with certainty); :func:`download_dataset` fetches what a data set declares.
We could not download anything while writing this (no network), so a checksum is recorded only
where it is certain: the MD5 sums the data sets' authors publish, and the SHA-256 of the Debian
Fashion-MNIST files (computed from the installed files; see :mod:`~tkam.data.idx`). No SHA-256 of
an official download is known, so where a checksum is recorded the download is verified against
it, and the SHA-256 of every downloaded file is printed so that users can compare it with a
trusted source (and record it).

Every file is written beside its destination and renamed into place only once verified
(:func:`tkam.files.atomic_path`). Where there is no network the first connection fails within
``timeout`` seconds and :func:`download_dataset` raises a :class:`~tkam.data.types.DataError`
that lists the files to place by hand and where.
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
from pathlib import Path

from tkam.data.registry import dataset_info, default_root
from tkam.data.types import DataError, RemoteFile
from tkam.files import atomic_path

__all__ = [
    "DEFAULT_TIMEOUT",
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


def _compare(shown: Path, algorithm: str, expected: str, found: str) -> None:
    if found.lower() != expected.lower():
        raise DataError(
            f"{shown}: {algorithm} checksum mismatch: expected {expected.lower()}, found {found} "
            "(a corrupt or incomplete download, or a different file)"
        )


def verify_sha256(path: str | Path, expected: str | None, *, shown: str | Path = "") -> str:
    """Check a file's SHA-256.

    Args:
        path: the file.
        expected: the recorded hex digest; ``None`` skips the check.
        shown: the name the error gives the file (default: ``path``; a download names its
            destination, not the temporary file).

    Returns:
        the file's SHA-256 (hex).

    Raises:
        DataError: naming the file, the expected and the found hash, when they differ.
    """
    path = Path(path)
    found = file_digest(path, "sha256")
    if expected is not None:
        _compare(Path(shown or path), "sha256", expected, found)
    return found


def verify_checksums(
    path: str | Path, sha256: str | None = None, md5: str | None = None, *, shown: str | Path = ""
) -> str:
    """Check every known checksum of a file; returns its SHA-256 (see :func:`verify_sha256`)."""
    path = Path(path)
    found = verify_sha256(path, sha256, shown=shown)
    if md5 is not None:
        _compare(Path(shown or path), "md5", md5, file_digest(path, "md5"))
    return found


# ------------------------------------------------------------------------------------------------
# Fetching


class UnreachableError(DataError):
    """A URL that could not be fetched (no network, refused, timed out, HTTP error); the message
    is the URL and the reason. :func:`download_dataset` then tries the file's next URL."""


def _fetch(url: str, partial: Path, destination: Path, timeout: float) -> None:
    """Copy the body of ``url`` into ``partial`` (the temporary file of ``destination``)."""
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
        reason = getattr(error, "reason", None) or error
        raise UnreachableError(f"{url}: {reason}") from error


def download_file(
    url: str,
    destination: str | Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Fetch ``url`` into ``destination`` and verify the known checksums.

    The data goes to a temporary file beside the destination first, renamed into place only
    once verified; a failed fetch or a checksum mismatch deletes it.

    Returns:
        the file's SHA-256.

    Raises:
        DataError: on a checksum mismatch (naming the file, expected and found hashes), or when
            the server sends a web page instead of the file.
        UnreachableError: when the URL cannot be reached or read.
    """
    destination = Path(destination)
    with atomic_path(destination) as partial:
        _fetch(url, partial, destination, timeout)
        return verify_checksums(partial, sha256, md5, shown=destination)


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


def manual_instructions(root: Path, files: Sequence[RemoteFile], note: str = "") -> str:
    """What to place where when the files cannot be downloaded.

    Args:
        root: the data root.
        files: the files still needed.
        note: the data set's further advice (its :attr:`DatasetInfo.download_note`).
    """
    lines = [f"place these files in {root}:"]
    for remote in files:
        unpack = " (then unpack it there)" if remote.unpack else ""
        lines.append(f"  {remote.name}{unpack}  from {remote.urls[0]}")
    return "\n".join(lines) + note


def _copy_local(remote: RemoteFile, root: Path, log: Callable[[str], None]) -> bool:
    """Copy ``remote.local_copy`` into the root when it exists and its SHA-256 is the recorded
    one; ``False``: nothing copied (download instead)."""
    source = remote.local_copy
    if source is None or remote.local_sha256 is None or not source.is_file():
        return False
    target = root / remote.name
    try:
        with atomic_path(target) as partial:
            shutil.copyfile(source, partial)
            verify_sha256(partial, remote.local_sha256)
    except DataError:
        expected = remote.local_sha256
        log(f"{source}: does not match its recorded sha256 {expected}; downloading instead")
        return False
    log(f"copied {source} -> {target} (sha256 {remote.local_sha256}, verified)")
    return True


def _download_one(
    remote: RemoteFile, root: Path, timeout: float, log: Callable[[str], None]
) -> list[str]:
    """Fetch one declared file from its first reachable URL (and unpack it).

    Returns:
        why each URL failed; empty when the file was fetched.
    """
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
        return []
    return failures


def download_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    log: Callable[[str], None] = print,
) -> Path:
    """Fetch the files a data set declares into its data root (``tkam data download``).

    Files already present are skipped; a file a system package installs (Fashion-MNIST from
    Debian) is copied from there when its checksum matches. Every fetched file is verified
    against its recorded checksum where one is known (see the module docstring) and its SHA-256
    is printed either way.

    Args:
        name: the data set.
        root: its data root (default: :func:`~tkam.data.registry.default_root`).
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
    root = Path(root).expanduser() if root else default_root(info.name)
    if not info.sources:
        if info.no_download is not None:
            raise DataError(info.no_download(root))
        raise DataError(f"{info.name} declares no files to download")
    assert root is not None  # only built-in data sets have no root, and they have no sources
    wanted = [remote for remote in info.sources if not remote.present(root)]
    for remote in info.sources:
        if remote not in wanted:
            log(f"{root / remote.name}: present, skipped")
    for position, remote in enumerate(wanted):
        root.mkdir(parents=True, exist_ok=True)
        if _copy_local(remote, root, log):
            continue
        failures = _download_one(remote, root, timeout, log)
        if failures:
            raise DataError(
                f"cannot download {info.display} ({'; '.join(failures)}). Without a network, "
                + manual_instructions(root, wanted[position:], info.download_note)
            )
    return root
