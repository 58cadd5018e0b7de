"""The download engine (:mod:`tkam.data.download`): checksums, downloads from a local server of the
files a format declares, the no-network failure, archives, local copies and the Debian
Fashion-MNIST copy (design 6). No test needs a network."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.data.helpers import FMNIST_ROOT, rgb_images, write_cifar_batch
from tkam.cli import main
from tkam.config import DataConfig
from tkam.data import DATASETS, DataError, dataset_info, load_dataset
from tkam.data.download import (
    RemoteFile,
    download_dataset,
    verify_checksums,
    verify_sha256,
)
from tkam.data.idx import DEBIAN_FMNIST_SHA256
from tkam.data.registry import FORMATS

CLOSED = "http://127.0.0.1:9/"  # the discard port: nothing listens, the connection is refused


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def declare(monkeypatch: pytest.MonkeyPatch, name: str, remotes: tuple[RemoteFile, ...]) -> None:
    """Let data set ``name`` declare ``remotes`` as its downloads for one test."""
    monkeypatch.setitem(FORMATS, name, FORMATS[name]._replace(sources=tuple(remotes)))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on a free port serving a temporary folder: (base URL, folder)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", folder
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# ---------------------------------------------------------------------------------------------
# Checksums


def test_verify_sha256_accepts_the_right_hash_and_names_the_wrong_one(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(b"tkam checksum fixture")
    good = sha256(b"tkam checksum fixture")
    assert verify_sha256(path, good) == good
    assert verify_sha256(path, good.upper()) == good
    assert verify_sha256(path, None) == good  # nothing recorded: just the hash
    wrong = "0" * 64
    with pytest.raises(DataError) as info:
        verify_sha256(path, wrong)
    message = str(info.value)
    assert str(path) in message and wrong in message and good in message
    with pytest.raises(DataError, match="md5 checksum mismatch"):
        verify_checksums(path, md5="0" * 32)
    assert verify_checksums(path, good, hashlib.md5(path.read_bytes()).hexdigest()) == good


def test_source_table_is_complete_and_well_formed() -> None:
    for name in DATASETS:
        sources = dataset_info(name).sources
        if name in ("digits", "darcy"):
            assert not sources
            continue
        assert sources, name
        for remote in sources:
            assert remote.urls and all(
                url.startswith(("http://", "https://")) for url in remote.urls
            )
            assert remote.sha256 is None or len(remote.sha256) == 64
            assert remote.md5 is None or len(remote.md5) == 32


@pytest.mark.skipif(not FMNIST_ROOT.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_recorded_debian_hashes_match_the_installed_files() -> None:
    for name, expected in DEBIAN_FMNIST_SHA256.items():
        assert verify_sha256(FMNIST_ROOT / name, expected) == expected


# ---------------------------------------------------------------------------------------------
# Downloads from a local server


def test_download_verifies_and_keeps_a_good_file(server, tmp_path, monkeypatch, capsys) -> None:
    base, served = server
    text = b" the cat sat\n the dog sat\n"
    (served / "ptb.train.txt").write_bytes(text)
    (served / "ptb.test.txt").write_bytes(b" a cat\n")
    remotes = (
        RemoteFile("ptb.train.txt", (base + "ptb.train.txt",), sha256=sha256(text)),
        RemoteFile("ptb.test.txt", (CLOSED + "missing", base + "ptb.test.txt")),  # a mirror
    )
    declare(monkeypatch, "ptb", remotes)
    root = tmp_path / "ptb"
    assert download_dataset("ptb", root) == root
    assert (root / "ptb.train.txt").read_bytes() == text
    assert (root / "ptb.test.txt").read_bytes() == b" a cat\n"
    assert not list(root.glob("*.part"))
    assert sorted(path.name for path in root.iterdir()) == ["ptb.test.txt", "ptb.train.txt"]
    out = capsys.readouterr().out
    assert sha256(text) in out and "verified sha256" in out
    assert sha256(b" a cat\n") in out and "no checksum recorded" in out
    data = load_dataset(DataConfig(name="ptb", root=str(root), num_train=1, num_test=1))
    assert data.train.shape == (1, 502, 500)
    # A second run finds everything present and fetches nothing.
    declare(monkeypatch, "ptb", tuple(RemoteFile(r.name, (CLOSED,)) for r in remotes))
    download_dataset("ptb", root)
    assert "present, skipped" in capsys.readouterr().out


def test_download_with_a_wrong_checksum_deletes_the_file(server, tmp_path, monkeypatch) -> None:
    base, served = server
    (served / "train_32x32.mat").write_bytes(b"pretend mat file")
    wrong = "f" * 64
    remote = RemoteFile("train_32x32.mat", (base + "train_32x32.mat",), sha256=wrong)
    declare(monkeypatch, "svhn", (remote,))
    root = tmp_path / "svhn"
    with pytest.raises(DataError) as info:
        download_dataset("svhn", root)
    message = str(info.value)
    assert str(root / "train_32x32.mat") in message
    assert wrong in message and sha256(b"pretend mat file") in message
    assert not (root / "train_32x32.mat").exists() and not list(root.glob("*.part"))
    assert not list(root.iterdir())  # no temporary file either


def test_download_refuses_a_web_page(server, tmp_path, monkeypatch) -> None:
    base, served = server
    (served / "confirm.html").write_text("<html>Google Drive can't scan this file</html>")
    remote = RemoteFile("img_align_celeba.zip", (base + "confirm.html",), unpack=True)
    declare(monkeypatch, "celeba", (remote,))
    with pytest.raises(DataError, match="web page") as info:
        download_dataset("celeba", tmp_path / "celeba")
    assert "by hand" in str(info.value)
    assert not list((tmp_path / "celeba").glob("*"))


def test_download_unpacks_archives(server, tmp_path, monkeypatch) -> None:
    base, served = server
    batch = write_cifar_batch(tmp_path / "build" / "data_batch_1", rgb_images(3))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        bundle.add(batch, arcname="cifar-10-batches-py/data_batch_1")
    (served / "cifar.tar.gz").write_bytes(buffer.getvalue())
    remote = RemoteFile(
        "cifar-10-python.tar.gz",
        (base + "cifar.tar.gz",),
        md5=hashlib.md5(buffer.getvalue()).hexdigest(),
        provides=("cifar-10-batches-py/data_batch_1",),
        unpack=True,
    )
    declare(monkeypatch, "cifar10", (remote,))
    root = tmp_path / "cifar"
    download_dataset("cifar10", root)
    assert (root / "cifar-10-batches-py" / "data_batch_1").is_file()
    assert not (root / "cifar-10-python.tar.gz").exists()
    data = load_dataset(DataConfig(name="cifar10", root=str(root), num_train=2, num_test=1))
    assert data.train.shape == (2, 3, 32, 32)

    images = tmp_path / "build" / "000001.jpg"
    from PIL import Image

    Image.new("RGB", (20, 24), (10, 200, 30)).save(images)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.write(images, "img_align_celeba/000001.jpg")
    (served / "celeba.zip").write_bytes(buffer.getvalue())
    remote = RemoteFile(
        "img_align_celeba.zip", (base + "celeba.zip",), provides=("img_align_celeba",), unpack=True
    )
    declare(monkeypatch, "celeba", (remote,))
    download_dataset("celeba", tmp_path / "celeba")
    assert (tmp_path / "celeba" / "img_align_celeba" / "000001.jpg").is_file()


# ---------------------------------------------------------------------------------------------
# No network


def test_no_network_fails_fast_naming_files_and_root(tmp_path, monkeypatch) -> None:
    remotes = (
        RemoteFile("train-images-idx3-ubyte.gz", (CLOSED + "train-images-idx3-ubyte.gz",)),
        RemoteFile("t10k-images-idx3-ubyte.gz", (CLOSED + "t10k-images-idx3-ubyte.gz",)),
    )
    declare(monkeypatch, "mnist", remotes)
    root = tmp_path / "mnist"
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        download_dataset("mnist", root, timeout=2.0)
    assert time.perf_counter() - start < 5.0
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "t10k-images-idx3-ubyte.gz" in message
    assert str(root) in message and "127.0.0.1:9" in message and "place these files" in message
    assert not list(root.glob("*"))


@pytest.mark.parametrize("name", ["digits", "darcy"])
def test_nothing_to_download_for_builtin_or_generated(name) -> None:
    with pytest.raises(DataError, match="bundled" if name == "digits" else "tkam data darcy"):
        download_dataset(name)


@pytest.mark.skipif(not FMNIST_ROOT.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_download_copies_the_debian_files(tmp_path, monkeypatch, capsys) -> None:
    # The official URLs are unreachable here: the copy must not need them.
    closed = tuple(replace(r, urls=(CLOSED + r.name,)) for r in FORMATS["fmnist"].sources)
    declare(monkeypatch, "fmnist", closed)
    root = tmp_path / "fmnist"
    assert main(["data", "download", "fmnist", "--root", str(root)]) == 0
    assert "verified" in capsys.readouterr().out
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        assert verify_sha256(root / name, DEBIAN_FMNIST_SHA256[name])
    config = DataConfig(name="fmnist", root=str(root), num_train=5, num_test=3, split="official")
    data = load_dataset(config)
    assert data.train.shape == (5, 1, 28, 28) and data.test.shape == (3, 1, 28, 28)


# ---------------------------------------------------------------------------------------------
# What the engine fetches


def test_the_engine_fetches_exactly_what_the_format_declares(
    server, tmp_path, monkeypatch, capsys
) -> None:
    base, served = server
    for name in ("train_32x32.mat", "test_32x32.mat", "extra.bin"):
        (served / name).write_bytes(name.encode())
    # The real declaration of SVHN, pointed at the local server: its names, its order.
    declared = dataset_info("svhn").sources
    declare(
        monkeypatch, "svhn", tuple(replace(r, urls=(base + r.name,), md5=None) for r in declared)
    )
    root = download_dataset("svhn", tmp_path / "svhn")
    assert sorted(path.name for path in root.iterdir()) == sorted(r.name for r in declared)
    out = capsys.readouterr().out.splitlines()
    fetched = [line.split()[1] for line in out if line.startswith("downloading")]
    assert fetched == [base + r.name for r in declared]


def test_a_local_copy_is_used_only_when_its_checksum_matches(server, tmp_path, monkeypatch) -> None:
    base, served = server
    (served / "ptb.train.txt").write_bytes(b" served copy\n")
    installed = tmp_path / "installed.txt"
    installed.write_bytes(b" installed copy\n")
    logs: list[str] = []
    good = RemoteFile(
        "ptb.train.txt", (CLOSED,), local_copy=installed, local_sha256=sha256(b" installed copy\n")
    )
    declare(monkeypatch, "ptb", (good,))
    root = download_dataset("ptb", tmp_path / "a", log=logs.append)  # no URL reachable
    assert (root / "ptb.train.txt").read_bytes() == b" installed copy\n"
    assert any("copied" in line and "verified" in line for line in logs)
    wrong = replace(good, urls=(base + "ptb.train.txt",), local_sha256="0" * 64)
    declare(monkeypatch, "ptb", (wrong,))
    root = download_dataset("ptb", tmp_path / "b", log=logs.append)
    assert (root / "ptb.train.txt").read_bytes() == b" served copy\n"
    assert any("does not match" in line and "0" * 64 in line for line in logs)
    assert sorted(path.name for path in root.iterdir()) == ["ptb.train.txt"]
