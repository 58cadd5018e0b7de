"""The argparse types of ``tkam``'s commands: bounds, messages, and paths probed without trace."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import torch

from tkam import argtypes
from tkam.argtypes import (
    MAX_COUNT,
    bounded_int,
    count,
    device,
    existing_path,
    folder,
    memory_problem,
    nonnegative_int,
    odd_positive_int,
    output_file,
    output_folder,
    positive_float,
    positive_int,
    seed,
)


def refused(parse, text: str) -> str:
    """The message ``parse`` refuses ``text`` with."""
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse(text)
    return str(info.value)


def listing(path: Path) -> set[Path]:
    return set(path.rglob("*"))


# --- integers -------------------------------------------------------------------------------


def test_bounded_int_accepts_its_bounds_and_refuses_beyond() -> None:
    parse = bounded_int(2, 5)
    assert [parse(t) for t in ("2", "3", "5", " 4 ", "+5")] == [2, 3, 5, 4, 5]
    assert refused(parse, "1") == "must be an integer in 2..5, got 1"
    assert refused(parse, "6") == "must be an integer in 2..5, got 6"
    assert refused(bounded_int(2), "-3") == "must be an integer >= 2, got -3"
    assert bounded_int(2)("10" * 20) == int("10" * 20)


@pytest.mark.parametrize("text", ["abc", "", " ", "1.5", "1e3", "0x10", "nan", "1,0", "--1"])
def test_integers_refuse_what_is_no_integer(text) -> None:
    for parse in (positive_int, nonnegative_int, count, seed, odd_positive_int):
        assert refused(parse, text) == f"expected an integer, got {text!r}"


def test_a_very_long_value_is_cut_in_the_message() -> None:
    message = refused(positive_int, "x" * 10_000)
    assert message.startswith("expected an integer, got 'xxx") and len(message) < 120
    message = refused(count, "9" * 400)  # an integer, but far out of range
    assert message.startswith("must be an integer in 1..") and message.endswith("...")
    assert len(message) < 120


def test_positive_nonnegative_and_count() -> None:
    assert positive_int("1") == 1 and refused(positive_int, "0").endswith(">= 1, got 0")
    assert nonnegative_int("0") == 0
    assert refused(nonnegative_int, "-1") == "must be an integer >= 0, got -1"
    assert count("1") == 1 and count(str(MAX_COUNT)) == MAX_COUNT
    assert refused(count, str(MAX_COUNT + 1)) == (
        f"must be an integer in 1..{MAX_COUNT}, got {MAX_COUNT + 1}"
    )
    assert refused(count, "0") == f"must be an integer in 1..{MAX_COUNT}, got 0"
    assert refused(count, "-5").endswith("got -5")


def test_seed_covers_what_torch_accepts_and_nothing_more() -> None:
    assert seed("0") == 0 and seed(str(2**64 - 1)) == 2**64 - 1
    torch.Generator().manual_seed(seed(str(2**64 - 1)))  # the largest is usable
    assert refused(seed, "-1") == f"must be an integer in 0..{2**64 - 1}, got -1"
    assert refused(seed, str(2**64)).endswith(f"got {2**64}")


def test_odd_positive_int() -> None:
    assert [odd_positive_int(t) for t in ("1", "3", "99")] == [1, 3, 99]
    for text in ("0", "2", "-1", "-3"):
        assert refused(odd_positive_int, text) == f"must be an odd integer >= 1, got {text}"


# --- floats ---------------------------------------------------------------------------------


def test_positive_float() -> None:
    assert positive_float("2.5") == 2.5 and positive_float("1e-9") == 1e-9
    assert positive_float("3") == 3.0
    for text in ("0", "-1", "-0.0", "nan", "inf", "-inf", "1e400"):
        assert refused(positive_float, text) == f"must be a finite number > 0, got {text}"
    assert refused(positive_float, "abc") == "expected a number, got 'abc'"
    assert refused(positive_float, "") == "expected a number, got ''"


# --- devices --------------------------------------------------------------------------------


def test_device_names() -> None:
    assert device("cpu") == "cpu" and device("auto") == "auto" and device("cpu:0") == "cpu:0"
    for text in ("nope", "meta", "", "cpu:x", "cuda:-1", "gpu"):
        assert "expected auto, cpu, cuda or cuda:N" in refused(device, text)


def test_device_refuses_a_gpu_this_machine_lacks() -> None:
    assert "cuda:99: this machine has" in refused(device, "cuda:99")
    if torch.cuda.is_available():
        assert device("cuda") == "cuda" and device("cuda:0") == "cuda:0"
    else:
        assert "this machine has no CUDA GPU" in refused(device, "cuda")
        assert "this machine has no CUDA GPU" in refused(device, "cuda:0")


# --- paths to read --------------------------------------------------------------------------


def test_existing_path(tmp_path) -> None:
    (tmp_path / "f.txt").write_text("x")
    assert existing_path(str(tmp_path / "f.txt")) == tmp_path / "f.txt"
    assert existing_path(str(tmp_path)) == tmp_path  # a folder is fine too
    assert refused(existing_path, str(tmp_path / "no")) == f"{tmp_path / 'no'} does not exist"
    assert refused(existing_path, "") == "expected a path, got an empty string"
    assert "cannot contain a NUL byte" in refused(existing_path, "a\0b")
    assert "File name too long" in refused(existing_path, "a" * 5000)
    assert existing_path("~") == Path.home()


def test_folder(tmp_path) -> None:
    (tmp_path / "f.txt").write_text("x")
    assert folder(str(tmp_path)) == tmp_path
    assert folder(str(tmp_path / "later")) == tmp_path / "later"  # need not exist
    assert not (tmp_path / "later").exists()
    assert (
        refused(folder, str(tmp_path / "f.txt")) == f"{tmp_path / 'f.txt'} is a file, not a folder"
    )
    assert refused(folder, "") == "expected a path, got an empty string"


# --- paths to write -------------------------------------------------------------------------


def test_output_file_checks_the_suffix_first_and_creates_nothing(tmp_path) -> None:
    parse = output_file(".npz", ".png")
    assert refused(parse, str(tmp_path / "a" / "x.jpg")) == (
        f"{tmp_path / 'a' / 'x.jpg'}: use a .npz or .png file name"
    )
    assert refused(parse, str(tmp_path / "x")) == f"{tmp_path / 'x'}: use a .npz or .png file name"
    assert refused(output_file(".png"), "x.PNG").endswith("use a .png file name")
    assert listing(tmp_path) == set()


def test_output_file_probes_without_a_trace(tmp_path) -> None:
    parse = output_file(".png")
    (tmp_path / "old.png").write_bytes(b"old")
    before = listing(tmp_path)
    assert parse(str(tmp_path / "new.png")) == tmp_path / "new.png"
    assert parse(str(tmp_path / "old.png")) == tmp_path / "old.png"  # may be overwritten
    assert parse(str(tmp_path / "a" / "b" / "deep.png")) == tmp_path / "a" / "b" / "deep.png"
    assert listing(tmp_path) == before and (tmp_path / "old.png").read_bytes() == b"old"
    assert output_file()(str(tmp_path / "any.name")) == tmp_path / "any.name"  # no suffix asked


def test_output_file_refuses_folders_files_on_the_way_and_unwritable_places(tmp_path) -> None:
    parse = output_file(".png")
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "file").write_text("x")
    assert refused(parse, str(tmp_path / "dir.png")) == (
        f"{tmp_path / 'dir.png'} is a folder; give a file name"
    )
    assert refused(parse, str(tmp_path / "file" / "x.png")) == (
        f"cannot write {tmp_path / 'file' / 'x.png'}: {tmp_path / 'file'} is a file, not a folder"
    )
    # Root ignores permission bits; /proc and /sys refuse new entries to anyone.
    assert refused(parse, "/proc/x.png").startswith(
        "cannot write /proc/x.png: cannot create anything in /proc ("
    )
    assert refused(output_file(".npz"), "/proc/sub/x.npz").startswith(
        "cannot write /proc/sub/x.npz: cannot create anything in /proc ("
    )
    assert refused(parse, "/sys/x.png").startswith("cannot write /sys/x.png")
    assert refused(parse, "") == "expected a path, got an empty string"
    assert "NUL" in refused(parse, "a\0.png")
    assert {p.name for p in tmp_path.iterdir()} == {"dir.png", "file"}


def test_output_folder(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    assert output_folder(str(tmp_path)) == tmp_path
    assert output_folder(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    assert {p.name for p in tmp_path.iterdir()} == {"file"}  # the probe left nothing
    assert refused(output_folder, str(tmp_path / "file")) == (
        f"{tmp_path / 'file'} is a file; give a folder"
    )
    assert refused(output_folder, str(tmp_path / "file" / "sub")) == (
        f"cannot write {tmp_path / 'file' / 'sub'}: {tmp_path / 'file'} is a file, not a folder"
    )
    assert refused(output_folder, "/proc/x").startswith("cannot write /proc/x: cannot create")
    assert refused(output_folder, "/sys/x").startswith("cannot write /sys/x: cannot create")
    assert refused(output_folder, "") == "expected a path, got an empty string"


def test_writability_probe_leaves_nothing_in_the_current_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert output_file(".png")("x.png") == Path("x.png")
    assert output_folder(".") == Path(".")
    assert output_folder("sub") == Path("sub")
    assert list(tmp_path.iterdir()) == []


# --- memory ---------------------------------------------------------------------------------


def test_memory_problem(monkeypatch) -> None:
    monkeypatch.setattr(argtypes, "_physical_memory", lambda: 4 * 2**30)
    assert memory_problem("--num 1: 1 sample", 2**30) is None
    message = memory_problem("--num 9: 9 samples", 6 * 2**30)
    assert message == (
        "--num 9: 9 samples need about 6.0 GiB of memory, more than this machine's 4.0 GiB; "
        "ask for fewer"
    )
    message = memory_problem("--resolution 10**400", 10**800)  # no float holds it
    assert message.startswith("--resolution 10**400 need far more of memory, more than")
    monkeypatch.setattr(argtypes, "_physical_memory", lambda: None)  # the system does not say
    assert memory_problem("anything", 10**30) is None


def test_memory_problem_on_a_gpu_with_its_own_fix(monkeypatch) -> None:
    monkeypatch.setattr(argtypes, "_physical_memory", lambda: 2**50)  # the host's is not asked
    monkeypatch.setattr(argtypes, "_device_memory", lambda device: 2 * 2**30)
    message = memory_problem("the model", 3 * 2**30, "make it smaller", device="cuda:1")
    assert message == (
        "the model need about 3.0 GiB of memory, more than cuda:1's 2.0 GiB; make it smaller"
    )
    assert memory_problem("the model", 2**30, device="cuda") is None
    monkeypatch.setattr(argtypes, "_device_memory", lambda device: None)  # torch cannot say
    assert memory_problem("the model", 10**30, device="cuda") is None


def test_physical_memory_is_known_here() -> None:
    total = argtypes._physical_memory()
    assert total is None or (total > 0 and math.isfinite(total))
