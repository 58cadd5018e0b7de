"""MNIST and Fashion-MNIST (:mod:`tkam.data.idx`): IDX reading, the loader's splits, conversion and
error messages, the cheap check ``tkam data list`` runs, the labels, the declared downloads and the
Debian Fashion-MNIST (maths 6)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.helpers import (
    FMNIST_ROOT,
    IDX_CODES,
    cut_in_half,
    fixture_images,
    idx_bytes,
    load_error,
    png_bytes,
    smoke_fit,
    write_idx,
)
from tkam.config import DataConfig
from tkam.data import DataError, ImageData, load_dataset, read_idx
from tkam.data.idx import (
    DEBIAN_FMNIST,
    DEBIAN_FMNIST_SHA256,
    FMNIST,
    FMNIST_SOURCES,
    MNIST,
    MNIST_SOURCES,
    check_idx,
    inspect_idx,
    inspect_idx_images,
    read_idx_labels,
)
from tkam.data.types import MalformedFileError

TRAIN_IMAGES = "train-images-idx3-ubyte"

# ---------------------------------------------------------------------------------------------
# read_idx


@pytest.mark.parametrize("dtype", list(IDX_CODES))
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trips_every_type(tmp_path: Path, dtype: np.dtype, suffix: str) -> None:
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 5, 2)) * 100).astype(dtype)
    path = write_idx(tmp_path / f"data{suffix}", array)
    values = read_idx(path)
    assert values.dtype == dtype and values.dtype.isnative
    assert values.shape == (3, 5, 2)
    np.testing.assert_array_equal(values, array)
    values[0, 0, 0] = 1  # writable, not a view of immutable bytes


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    compressed = write_idx(tmp_path / "compressed-without-suffix", array, compress=True)
    plain = write_idx(tmp_path / "already-decompressed.gz", array, compress=False)
    np.testing.assert_array_equal(read_idx(compressed), array)
    np.testing.assert_array_equal(read_idx(plain), array)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_idx_raises_naming_file_and_sizes(tmp_path: Path, compress: bool) -> None:
    data = idx_bytes(fixture_images(4))
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(gzip.compress(data[:-10]) if compress else data[:-10])
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    # The header is 16 bytes: the file has 16 + 3136 - 10 bytes where it declares 16 + 3136.
    assert "has 3142 bytes" in message and "declares 3152" in message


def test_trailing_bytes_raise(tmp_path: Path) -> None:
    path = tmp_path / "long-idx3-ubyte"
    path.write_bytes(idx_bytes(fixture_images(2)) + b"\x00")
    with pytest.raises(DataError, match="trailing bytes"):
        read_idx(path)


@pytest.mark.parametrize(
    "content",
    [
        b"\x01\x00\x08\x01\x00\x00\x00\x01\x05",  # first byte not zero
        b"\x00\x00\x07\x01\x00\x00\x00\x01\x05",  # unknown type code
        b"\x00\x00",  # shorter than the magic
        b"\x00\x00\x08\x03\x00\x00\x00\x02",  # header cut inside the sizes
    ],
)
def test_corrupt_header_raises_naming_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.idx"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_gzip_stream_raises(tmp_path: Path) -> None:
    compressed = bytearray(gzip.compress(idx_bytes(fixture_images(3))))
    compressed[len(compressed) // 2] ^= 0xFF
    path = tmp_path / f"{TRAIN_IMAGES}.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(DataError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# The cheap check: inspect_idx, inspect_idx_images, check_idx


def _inspect_error(path: Path) -> MalformedFileError:
    with pytest.raises(MalformedFileError) as info:
        inspect_idx(path)
    return info.value


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_check_idx_accepts_valid_images_without_reading_them(tmp_path: Path, suffix: str) -> None:
    path = write_idx(tmp_path / f"{TRAIN_IMAGES}{suffix}", fixture_images(6))
    header = inspect_idx_images(path)
    assert header.shape == (6, 28, 28) and header.size == 16 + 6 * 28 * 28
    assert check_idx(tmp_path) == []
    # The official split also checks the test images, when present.
    assert check_idx(tmp_path, "official") == []
    (tmp_path / f"t10k-images-idx3-ubyte{suffix}").write_bytes(b"\x00\x00\x08")
    assert check_idx(tmp_path) == []
    (problem,) = check_idx(tmp_path, "official")
    assert problem.startswith(f"truncated: t10k-images-idx3-ubyte{suffix} (")


@pytest.mark.parametrize("compress", [False, True])
def test_check_idx_reports_a_file_cut_in_half_with_both_lengths(
    tmp_path: Path, compress: bool
) -> None:
    name = f"{TRAIN_IMAGES}.gz" if compress else TRAIN_IMAGES
    path = write_idx(tmp_path / name, fixture_images(5))
    length = cut_in_half(path)
    (problem,) = check_idx(tmp_path)
    assert problem.startswith(f"truncated: {name} (")
    if compress:  # the stream ends early: what it held, and what the header declares
        assert "gzip stream ends early, after" in problem and "declares 3936" in problem
        assert "after 0 decompressed" not in problem
    else:
        assert f"has {length // 2} bytes, the header declares 3936" in problem
    assert str(path) in load_error(DataConfig(name="mnist", root=str(tmp_path)))


def test_gzip_stream_with_a_wrong_magic_is_not_an_idx_file(tmp_path: Path) -> None:
    # A valid gzip stream whose content is foreign: the content is wrong, not the compression.
    path = tmp_path / f"{TRAIN_IMAGES}.gz"
    path.write_bytes(gzip.compress(png_bytes()))
    error = _inspect_error(path)
    assert error.kind == "not an IDX file" and "magic 0x89504E47 in its gzip stream" in error.detail
    (problem,) = check_idx(tmp_path)
    assert problem.startswith(f"not an IDX file: {TRAIN_IMAGES}.gz (magic 0x89504E47")
    assert "not an IDX file" in load_error(DataConfig(name="mnist", root=str(tmp_path)))


def test_plain_file_named_gz_with_a_wrong_magic_is_not_gzip_compressed(tmp_path: Path) -> None:
    path = tmp_path / f"{TRAIN_IMAGES}.gz"
    path.write_bytes(png_bytes())  # neither gzip nor (decompressed) IDX
    (problem,) = check_idx(tmp_path)
    assert problem.startswith(f"not gzip-compressed: {TRAIN_IMAGES}.gz (magic 0x89504E47: neither")
    message = load_error(DataConfig(name="fmnist", root=str(tmp_path)))
    assert str(path) in message and "not gzip-compressed" in message
    # Without the .gz name the same bytes are simply not IDX.
    path.rename(tmp_path / TRAIN_IMAGES)
    (problem,) = check_idx(tmp_path)
    assert problem.startswith(f"not an IDX file: {TRAIN_IMAGES} (magic 0x89504E47, expected")


@pytest.mark.parametrize("compress", [False, True])
def test_check_idx_reports_trailing_bytes(tmp_path: Path, compress: bool) -> None:
    data = idx_bytes(fixture_images(2)) + b"\x00" * 7
    name = f"{TRAIN_IMAGES}.gz" if compress else TRAIN_IMAGES
    (tmp_path / name).write_bytes(gzip.compress(data) if compress else data)
    (problem,) = check_idx(tmp_path)
    unit = " decompressed" if compress else ""
    assert problem.startswith(f"trailing bytes: {name} (has {16 + 2 * 784 + 7} bytes{unit}, ")
    assert f"the header declares {16 + 2 * 784} for shape (2, 28, 28) of uint8" in problem


def test_gzip_whose_trailer_disagrees_is_decompressed_to_say_why(tmp_path: Path) -> None:
    # The header's declared length and the gzip trailer's ISIZE disagree: inspect_idx decompresses
    # the whole stream, which then fails its length check; check_idx reports the same error.
    compressed = bytearray(gzip.compress(idx_bytes(fixture_images(3))))
    compressed[-4:] = (123).to_bytes(4, "little")
    path = tmp_path / f"{TRAIN_IMAGES}.gz"
    path.write_bytes(bytes(compressed))
    error = _inspect_error(path)
    assert error.kind == "corrupt gzip stream" and "Incorrect length" in error.detail
    assert f"after {16 + 3 * 784} decompressed bytes" in error.detail
    assert check_idx(tmp_path) == [error.status(tmp_path)]
    # A consistent trailer on content cut short: the header's length against the stream's.
    path.write_bytes(gzip.compress(idx_bytes(fixture_images(3))[:-5]))
    error = _inspect_error(path)
    assert error.kind == "truncated" and "has 2363 bytes decompressed" in error.detail
    assert check_idx(tmp_path) == [error.status(tmp_path)]


def test_check_idx_reports_labels_and_integer_images(tmp_path: Path) -> None:
    write_idx(tmp_path / TRAIN_IMAGES, np.arange(10, dtype=np.uint8))
    (problem,) = check_idx(tmp_path)
    assert problem.startswith(f"wrong shape: {TRAIN_IMAGES} (") and "labels file" in problem
    write_idx(tmp_path / TRAIN_IMAGES, np.zeros((2, 28, 28), dtype=np.int16))
    assert check_idx(tmp_path) == [
        f"wrong type: {TRAIN_IMAGES} (int16 values, expected uint8 (or floats in [0, 1]))"
    ]


# ---------------------------------------------------------------------------------------------
# load_dataset on fixture IDX files


@pytest.mark.parametrize("name", ["mnist", "fmnist"])
@pytest.mark.parametrize("filename", [TRAIN_IMAGES, f"{TRAIN_IMAGES}.gz"])
def test_idx_dataset_shapes_range_values_and_split(
    tmp_path: Path, name: str, filename: str
) -> None:
    images = fixture_images(30)
    write_idx(tmp_path / filename, images)
    data = load_dataset(DataConfig(name=name, root=str(tmp_path), num_train=20, num_test=7))
    assert isinstance(data, ImageData) and data.name == name
    assert data.train.shape == (20, 1, 28, 28) and data.test.shape == (7, 1, 28, 28)
    assert data.image_shape == (1, 28, 28)
    assert data.train.dtype == torch.float32 and data.test.dtype == torch.float32
    assert float(data.train.min()) == 0.0 and float(data.train.max()) == 1.0
    # First num_train images train, the next num_test test, each scaled by 1/255.
    expected = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    torch.testing.assert_close(data.train, expected[:20], rtol=0, atol=0)
    torch.testing.assert_close(data.test, expected[20:27], rtol=0, atol=0)


def test_num_train_zero_takes_all_but_the_test_images(tmp_path: Path) -> None:
    write_idx(tmp_path / TRAIN_IMAGES, fixture_images(30))
    data = load_dataset(DataConfig(name="mnist", root=str(tmp_path), num_train=0, num_test=4))
    assert (len(data.train), len(data.test)) == (26, 4)


def test_split_larger_than_file_raises_with_numbers(tmp_path: Path) -> None:
    path = write_idx(tmp_path / TRAIN_IMAGES, fixture_images(10))
    config = DataConfig(name="mnist", root=str(tmp_path), num_train=8, num_test=3)
    message = load_error(config)
    assert str(path) in message and "8 + 3" in message and "10 images" in message


def test_labels_file_given_as_images_raises(tmp_path: Path) -> None:
    labels = np.arange(30, dtype=np.uint8) % 10
    path = write_idx(tmp_path / f"{TRAIN_IMAGES}.gz", labels)  # a labels file under the wrong name
    with pytest.raises(DataError, match="labels") as info:
        load_dataset(DataConfig(name="mnist", root=str(tmp_path), num_train=10, num_test=5))
    message = str(info.value)
    assert str(path) in message and "(N, 1, 28, 28)" in message and "(30,)" in message


def test_wrong_image_size_raises(tmp_path: Path) -> None:
    write_idx(tmp_path / TRAIN_IMAGES, np.zeros((5, 32, 32), dtype=np.uint8))
    with pytest.raises(DataError, match=r"\(5, 1, 32, 32\)"):
        load_dataset(DataConfig(name="fmnist", root=str(tmp_path), num_train=2, num_test=1))


@pytest.mark.parametrize("name", ["mnist", "fmnist"])
def test_missing_root_names_the_files_and_where(tmp_path: Path, name: str) -> None:
    root = tmp_path / "nowhere"
    message = load_error(DataConfig(name=name, root=str(root)))
    assert str(root) in message and TRAIN_IMAGES in message and "t10k-images-idx3-ubyte" in message
    assert ("apt-get install" in message) == (name == "fmnist")


def test_root_without_the_images_file_raises(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(DataError, match=f"has no {TRAIN_IMAGES}"):
        load_dataset(DataConfig(name="mnist", root=str(tmp_path)))


def test_idx_official_split_reads_t10k(tmp_path: Path) -> None:
    train, test = fixture_images(10, seed=1), fixture_images(6, seed=2)
    write_idx(tmp_path / f"{TRAIN_IMAGES}.gz", train)
    config = DataConfig(name="mnist", root=str(tmp_path), num_train=7, num_test=4, split="official")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_dataset(config)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test)
    data = load_dataset(config)
    expected = torch.from_numpy(test[:4].astype(np.float32) / 255.0)[:, None]
    torch.testing.assert_close(data.test, expected, rtol=0, atol=0)
    assert len(data.train) == 7


# ---------------------------------------------------------------------------------------------
# Labels and downloads


def test_labels_are_read_from_the_idx_labels_file(tmp_path: Path) -> None:
    assert read_idx_labels(tmp_path, 3) is None  # no labels file
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    np.testing.assert_array_equal(read_idx_labels(tmp_path, 3), labels)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08")  # truncated header
    assert read_idx_labels(tmp_path, 3) is None
    assert MNIST.labels is FMNIST.labels is read_idx_labels


def test_declared_downloads_are_the_compressed_images_of_each_source() -> None:
    stems = ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"]
    for sources, host in ((MNIST_SOURCES, "mnist"), (FMNIST_SOURCES, "fashion-mnist")):
        assert [remote.name for remote in sources] == [f"{stem}.gz" for stem in stems]
        for remote, stem in zip(sources, stems):
            assert remote.alternatives == (stem,)  # the decompressed file serves as well
            assert len(remote.md5) == 32 and len(remote.urls) == 2
            assert all(url.endswith(remote.name) and host in url for url in remote.urls)
    assert MNIST.sources == MNIST_SOURCES and FMNIST.sources == FMNIST_SOURCES
    # MNIST has no local copy; Fashion-MNIST's comes from the Debian package, with its hashes.
    assert all(remote.local_copy is None for remote in MNIST_SOURCES)
    for remote in FMNIST_SOURCES:
        assert remote.local_copy == DEBIAN_FMNIST / remote.name
        assert remote.local_sha256 == DEBIAN_FMNIST_SHA256[remote.name]
    assert FMNIST.system_root == DEBIAN_FMNIST and MNIST.system_root is None
    assert "dataset-fashion-mnist" in FMNIST.download_note and not MNIST.download_note


# ---------------------------------------------------------------------------------------------
# The Debian Fashion-MNIST


@pytest.mark.skipif(not FMNIST_ROOT.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_the_debian_package() -> None:
    data = load_dataset(DataConfig(name="fmnist", num_train=1000, num_test=100))
    assert data.train.shape == (1000, 1, 28, 28) and data.test.shape == (100, 1, 28, 28)
    assert data.train.dtype == torch.float32
    assert 0.0 <= float(data.train.min()) and float(data.train.max()) == 1.0
    # Real clothing images: mostly dark background, clearly non-constant.
    assert 0.1 < float(data.train.mean()) < 0.5 and float(data.train.std()) > 0.2


@pytest.mark.skipif(not FMNIST_ROOT.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_training_runs_on_debian_fashion_mnist(tmp_path: Path) -> None:
    smoke_fit(tmp_path, name="fmnist", num_train=40, num_test=10)
