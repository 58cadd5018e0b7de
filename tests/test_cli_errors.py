"""Every ``tkam`` entry point turns a user's mistake into one clear line and a non-zero exit.

A table of bad invocations, one per subcommand and argument, each run through ``main`` in-process:
the exit status is 2, nothing on stderr is a traceback, the last line is ``tkam: error: ...`` or
argparse's ``tkam <command>: error: ...`` and names the bad value, option, key or file; nothing is
left behind. A property test then throws random argument lists at the subcommands that fail fast.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import tiny_config
from tkam.cli import build_parser, main
from tkam.config import ConfigError, dumps_toml, resolve_config_path
from tkam.data.registry import DATASETS
from tkam.metrics import commands as metrics_commands
from tkam.train import fit

# ``tkam: error: ...`` (a command's error) or ``tkam data darcy: error: ...`` (argparse's).
ERROR_LINE = re.compile(r"^tkam(?: [a-z-]+)*: error: ")
ARGPARSE_LINE = re.compile(
    r"^tkam(?: [a-z-]+)+: error: |^tkam: error: (argument|the following|unrecognized)"
)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished run of the tiny model, trained in-process (a few seconds)."""
    run = tmp_path_factory.mktemp("errors") / "run"
    fit(tiny_config(train={"max_steps": 2, "seed": 5}), run, progress=False)
    assert (run / "model.safetensors").is_file()
    return run


@pytest.fixture(scope="module")
def paths(tmp_path_factory, trained_run) -> dict[str, Path]:
    """The files and folders the table's argument lists name, by placeholder."""
    root = tmp_path_factory.mktemp("inputs")
    toml = root / "tiny.toml"
    toml.write_text(dumps_toml(tiny_config(train={"max_steps": 1})))
    not_utf8 = root / "latin1.toml"
    not_utf8.write_bytes(b"\xff\xfe[train]\nseed = 1\n")
    malformed = root / "malformed.toml"
    malformed.write_text("[train\nseed = \n")
    folder = root / "folder"
    folder.mkdir()
    folder_png = root / "folder.png"  # a folder with a file's suffix
    folder_png.mkdir()
    regular = root / "regular.txt"
    regular.write_text("not a run\n")
    return {
        "run": trained_run,
        "toml": toml,
        "not_utf8": not_utf8,
        "malformed": malformed,
        "folder": folder,
        "folder_png": folder_png,
        "file": regular,
    }


def case(argv: str, expected: str, *, argparse_error: bool = False, absent: str = ""):
    """One bad invocation: ``argv`` split on spaces (``{name}`` filled from ``paths``, ``{tmp}``
    the test's own empty folder, ``~`` an empty argument), the text stderr's last line must hold
    (filled in the same way), whether argparse rejects it, and a path that must not exist after."""
    return pytest.param(argv, expected, argparse_error, absent, id=argv)


# A value far past every count's bound, and 2**64: one past the largest seed.
HUGE = "99999999999999999999"
SEED_OVERFLOW = str(2**64)

CASES = [
    # tkam sample
    case(
        "sample {run} --num abc --out {tmp}/s.png",
        "argument --num: expected an integer, got 'abc'",
        argparse_error=True,
    ),
    case(
        "sample {run} --num 0 --out {tmp}/s.png",
        "argument --num: must be an integer in 1..",
        argparse_error=True,
    ),
    case("sample {run} --num -5 --out {tmp}/s.png", "got -5", argparse_error=True),
    case(f"sample {{run}} --num {HUGE} --out {{tmp}}/s.png", f"got {HUGE}", argparse_error=True),
    case(
        "sample {run} --num 1.5 --out {tmp}/s.png",
        "argument --num: expected an integer, got '1.5'",
        argparse_error=True,
    ),
    case(
        "sample {run} --seed -1 --out {tmp}/s.png",
        "argument --seed: must be an integer in 0..",
        argparse_error=True,
    ),
    case(
        f"sample {{run}} --seed {SEED_OVERFLOW} --out {{tmp}}/s.png",
        f"got {SEED_OVERFLOW}",
        argparse_error=True,
    ),
    case(
        "sample {run} --seed abc --out {tmp}/s.png",
        "argument --seed: expected an integer, got 'abc'",
        argparse_error=True,
    ),
    case(
        "sample {run} --out {tmp}/x.jpg",
        "{tmp}/x.jpg: use a .npz or .png file name",
        argparse_error=True,
        absent="{tmp}/x.jpg",
    ),
    case(
        "sample {run} --out {tmp}/new/x.jpg",
        "{tmp}/new/x.jpg: use a .npz",
        argparse_error=True,
        absent="{tmp}/new",
    ),
    case("sample {run} --out /proc/x.png", "cannot write /proc/x.png", argparse_error=True),
    case("sample {run} --out /proc/sub/x.npz", "cannot write /proc/sub/x.npz", argparse_error=True),
    case("sample {run} --out /sys/x.npz", "cannot write /sys/x.npz", argparse_error=True),
    case(
        "sample {run} --out {folder_png}",
        "{folder_png} is a folder; give a file name",
        argparse_error=True,
    ),
    case(
        "sample {run} --out {folder}", "{folder}: use a .npz or .png file name", argparse_error=True
    ),
    case(
        "sample {run} --out ~",
        "argument --out: expected a path, got an empty string",
        argparse_error=True,
    ),
    case("sample {run} --out {file}/x.png", "{file} is a file, not a folder", argparse_error=True),
    case(
        "sample {run} --num 3", "the following arguments are required: --out", argparse_error=True
    ),
    case(
        "sample --out {tmp}/s.png",
        "the following arguments are required: run_dir",
        argparse_error=True,
    ),
    case(
        "sample {run} --out {tmp}/s.png --latent",
        "--latent stores z in the .npz",
        absent="{tmp}/s.png",
    ),
    case(
        "sample {tmp}/missing --out {tmp}/s.png",
        "{tmp}/missing is not a run folder",
        absent="{tmp}/s.png",
    ),
    case("sample {folder} --out {tmp}/s.png", "{folder} is not a run folder", absent="{tmp}/s.png"),
    case("sample {file} --out {tmp}/s.png", "{file} is not a run folder", absent="{tmp}/s.png"),
    # tkam plot
    case("plot {run} nope --out {tmp}/p", "unknown figure 'nope'", absent="{tmp}/p"),
    case("plot {tmp}/missing", "{tmp}/missing is not a run folder", absent="{tmp}/missing"),
    case("plot {folder}", "{folder} is not a run folder"),
    case("plot {file}", "{file} is not a run folder"),
    case("plot {run} --out {file}", "{file} is a file; give a folder", argparse_error=True),
    case("plot {run} --out /proc/x", "cannot write /proc/x", argparse_error=True),
    case(
        "plot {run} --out ~",
        "argument --out: expected a path, got an empty string",
        argparse_error=True,
    ),
    case("plot {run} --num 0", "argument --num: must be an integer in 1..", argparse_error=True),
    case(f"plot {{run}} --num {HUGE}", f"got {HUGE}", argparse_error=True),
    case("plot {run} --seed -1", "argument --seed", argparse_error=True),
    # tkam plot-prior
    case(
        "plot-prior {run} --out {tmp}/p.png --components 99,0",
        "--components 99,0 is out of range",
        absent="{tmp}/p.png",
    ),
    case(
        "plot-prior {run} --out {tmp}/p.png --components 0,99",
        "--components 0,99 is out of range",
        absent="{tmp}/p.png",
    ),
    case(
        "plot-prior {run} --out {tmp}/p.png --components abc",
        "argument --components: expected Q,P (two integers, e.g. 0,1), got 'abc'",
        argparse_error=True,
    ),
    case("plot-prior {run} --out {tmp}/p.png --components 1", "got '1'", argparse_error=True),
    case(
        "plot-prior {run} --out {tmp}/p.png --components -1,0",
        "argument --components: -1,0: component indices start at 0",
        argparse_error=True,
    ),
    case(
        "plot-prior {run} --out {tmp}/p.png --components 1,2,3", "got '1,2,3'", argparse_error=True
    ),
    case(
        "plot-prior {run} --out {tmp}/p.jpg",
        "{tmp}/p.jpg: use a .png file name",
        argparse_error=True,
    ),
    case(
        "plot-prior {run} --out {tmp}/p.png --export {tmp}/p.csv",
        "argument --export: {tmp}/p.csv: use a .npz",
        argparse_error=True,
    ),
    case(
        "plot-prior {run} --out {tmp}/p.png --export /proc/x.npz",
        "cannot write /proc/x.npz",
        argparse_error=True,
    ),
    case("plot-prior {run}", "the following arguments are required: --out", argparse_error=True),
    case("plot-prior {tmp}/missing --out {tmp}/p.png", "{tmp}/missing is not a run folder"),
    case("plot-prior {folder} --out {tmp}/p.png", "{folder} is not a run folder"),
    case("plot-prior {file} --out {tmp}/p.png", "{file} is not a run folder"),
    # tkam evaluate (every case fails before any sampling or feature training)
    case("evaluate {tmp}/missing", "{tmp}/missing is not a run folder"),
    case("evaluate {folder}", "{folder} is not a run folder"),
    case("evaluate {file}", "{file} is not a run folder"),
    case("evaluate {run} --num 10 --sample-sizes 5 20", "--sample-sizes 20 exceeds --num 10"),
    case(
        "evaluate {run} --data-root {tmp}/moved",
        "argument --data-root: {tmp}/moved does not exist",
        argparse_error=True,
    ),
    case(
        "evaluate {run} --feature-steps 0",
        "argument --feature-steps: must be an integer in 1..",
        argparse_error=True,
    ),
    case("evaluate {run} --ti-chains 0", "argument --ti-chains", argparse_error=True),
    case(
        "evaluate {run} --ti-items -1",
        "argument --ti-items: must be an integer in 0..",
        argparse_error=True,
    ),
    case("evaluate {run} --kid-subsets 0", "argument --kid-subsets", argparse_error=True),
    case(
        "evaluate {run} --importance-samples abc",
        "argument --importance-samples: expected an integer, got 'abc'",
        argparse_error=True,
    ),
    case("evaluate {run} --sample-sizes 0", "argument --sample-sizes", argparse_error=True),
    case(
        "evaluate {run} --features nope",
        "argument --features: invalid choice: 'nope'",
        argparse_error=True,
    ),
    case(
        "evaluate {run} --inception {tmp}/inception.pth",
        "{tmp}/inception.pth does not exist",
        argparse_error=True,
    ),
    case(
        "evaluate {run} --feature-cache {file}",
        "{file} is a file; give a folder",
        argparse_error=True,
    ),
    case(
        "evaluate {run} --out {folder}",
        "{folder} is a folder; give a file name",
        argparse_error=True,
    ),
    case("evaluate {run} --out /proc/m.json", "cannot write /proc/m.json", argparse_error=True),
    case("evaluate {run} --seed -1", "argument --seed", argparse_error=True),
    case(
        f"evaluate {{run}} --num {HUGE}",
        f"argument --num: must be an integer in 1..10000000, got {HUGE}",
        argparse_error=True,
    ),
    # tkam inspect
    case("inspect {tmp}/missing", "{tmp}/missing is not a run folder"),
    case("inspect {folder} --json", "{folder} is not a run folder"),
    case("inspect {file}", "{file} is not a run folder"),
    case(
        "inspect {run} --samples 1",
        "argument --samples: must be an integer in 2..",
        argparse_error=True,
    ),
    case(
        "inspect {run} --seed -1", "argument --seed: must be an integer in 0..", argparse_error=True
    ),
    case("inspect --json", "the following arguments are required: run_dir", argparse_error=True),
    # tkam train (every case fails before training starts)
    case("train no-such-config", "'no-such-config' is neither a TOML file nor a packaged config"),
    case("train {tmp}/missing.toml", "config file '{tmp}/missing.toml' does not exist"),
    case("train {not_utf8}", "{not_utf8}: not UTF-8 text (byte 0xff at offset 0)"),
    case("train {malformed}", "{malformed}: not valid TOML"),
    case("train {folder}", "'{folder}' (it is a folder) is neither a TOML file"),
    case("train ~", "no config given"),
    case("train", "the following arguments are required: config", argparse_error=True),
    case(
        "train {toml} --out {tmp}/r --set prior.nope=1",
        "unknown key 'prior.nope'",
        absent="{tmp}/r",
    ),
    case("train {toml} --out {tmp}/r --set nope.key=1", "unknown key 'nope'", absent="{tmp}/r"),
    case(
        "train {toml} --out {tmp}/r --set train.batch_size=ten",
        "train.batch_size: expected int, got str 'ten'",
        absent="{tmp}/r",
    ),
    case(
        "train {toml} --out {tmp}/r --set train.batch_size=0",
        "train.batch_size: must be >= 1, got 0",
        absent="{tmp}/r",
    ),
    case(
        "train {toml} --out {tmp}/r --set train.learning_rate=-1",
        "train.learning_rate: must be > 0",
        absent="{tmp}/r",
    ),
    case(
        "train {toml} --out {tmp}/r --set prior.basis=nope",
        "prior.basis: 'nope' is not one of",
        absent="{tmp}/r",
    ),
    case(
        "train {toml} --out {tmp}/r --set train.max_steps=1e400",
        "train.max_steps: expected int, got float inf",
        absent="{tmp}/r",
    ),
    case(
        "train {toml} --out {tmp}/r --set trainbatch",
        "--set 'trainbatch': expected section.key=value",
        absent="{tmp}/r",
    ),
    case(
        "train {toml} --out {tmp}/r --set =3",
        "--set '=3': the key must look like section.key",
        absent="{tmp}/r",
    ),
    case(
        "train {toml} --out {tmp}/r --set prior.widths.x=1",
        "'widths' is not a table",
        absent="{tmp}/r",
    ),
    case(
        "train {toml} --out {tmp}/r --device nope",
        "argument --device: expected auto, cpu, cuda or cuda:N, got 'nope'",
        argparse_error=True,
        absent="{tmp}/r",
    ),
    case(
        "train {toml} --out {tmp}/r --device cuda:99",
        "argument --device: cuda:99: this machine has",
        argparse_error=True,
        absent="{tmp}/r",
    ),
    case(
        "train {toml} --out {tmp}/r --resume --overwrite",
        "argument --overwrite: not allowed with argument --resume",
        argparse_error=True,
        absent="{tmp}/r",
    ),
    # Nothing to resume: a missing folder is refused before it is created.
    case(
        "train {toml} --out {tmp}/empty-run --resume --no-progress",
        "nothing to resume: {tmp}/empty-run is not a run folder",
        absent="{tmp}/empty-run",
    ),
    case("train {toml} --out {file} --no-progress", "{file} exists and is not a folder"),
    # A model far beyond memory: refused before it is built, naming the widths and the memory.
    case(
        "train {toml} --out {tmp}/r --no-progress --set prior.widths=[3,100000] "
        "--set generator.widths=[100000,16]",
        "(prior.widths = [3, 100000], generator.widths = [100000, 16]) and one training update "
        "need about",
        absent="{tmp}/r",
    ),
    # tkam data
    case("data download nope", "argument name: invalid choice: 'nope'", argparse_error=True),
    case(
        "data download mnist --timeout 0",
        "argument --timeout: must be a finite number > 0, got 0",
        argparse_error=True,
    ),
    case(
        "data download mnist --timeout -1",
        "argument --timeout: must be a finite number > 0, got -1",
        argparse_error=True,
    ),
    case("data download mnist --timeout nan", "got nan", argparse_error=True),
    case("data download mnist --timeout inf", "got inf", argparse_error=True),
    case(
        "data download mnist --timeout abc",
        "argument --timeout: expected a number, got 'abc'",
        argparse_error=True,
    ),
    case(
        "data download mnist --root {file}",
        "argument --root: {file} is a file; give a folder",
        argparse_error=True,
    ),
    case("data download mnist --root /proc/x", "cannot write /proc/x", argparse_error=True),
    case("data download", "the following arguments are required: name", argparse_error=True),
    case(
        "data darcy --num 0 --out {tmp}/d.h5",
        "argument --num: must be an integer in 1..",
        argparse_error=True,
    ),
    case(f"data darcy --num {HUGE} --out {{tmp}}/d.h5", f"got {HUGE}", argparse_error=True),
    case(
        "data darcy --num 1 --resolution 1 --out {tmp}/d.h5",
        "argument --resolution: must be an integer >= 2, got 1",
        argparse_error=True,
    ),
    case(
        "data darcy --num 1 --refinement 2 --out {tmp}/d.h5",
        "argument --refinement: must be an odd integer >= 1, got 2",
        argparse_error=True,
    ),
    case(
        "data darcy --num 1 --refinement 0 --out {tmp}/d.h5",
        "argument --refinement",
        argparse_error=True,
    ),
    case("data darcy --num 1 --seed -1 --out {tmp}/d.h5", "argument --seed", argparse_error=True),
    case("data darcy --num 1 --out {file}", "{file} exists; pass --force to overwrite it"),
    case(
        "data darcy --num 1 --out {folder}",
        "{folder} is a folder; give a file name",
        argparse_error=True,
    ),
    case("data darcy --num 1 --out /proc/d.h5", "cannot write /proc/d.h5", argparse_error=True),
    case("data darcy --num 1", "the following arguments are required: --out", argparse_error=True),
    case(
        "data darcy --num 10 --resolution 1000000 --out {tmp}/d.h5",
        "--resolution 1000000 (solved at 3000000x3000000) need about",
        absent="{tmp}/d.h5",
    ),
    case(
        "data list --root {file}",
        "argument --root: {file} is a file, not a folder",
        argparse_error=True,
    ),
    case("data", "the following arguments are required: data_command", argparse_error=True),
    case("data nope", "invalid choice: 'nope'", argparse_error=True),
    # tkam itself
    case("nope", "argument command: invalid choice: 'nope'", argparse_error=True),
    case("", "the following arguments are required: command", argparse_error=True),
    case("configs --all", "unrecognized arguments: --all", argparse_error=True),
]


def _fill(text: str, paths: dict[str, Path], tmp: Path) -> str:
    return text.format(tmp=tmp, **paths)


def _run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)``'s exit status, stdout and stderr; argparse's SystemExit counts as a status."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def _snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_the_table_covers_every_subcommand() -> None:
    assert len(CASES) >= 60
    commands = {" ".join(param.values[0].split()[:2]) for param in CASES}
    for command in ("sample", "plot", "plot-prior", "evaluate", "inspect", "train", "configs"):
        assert any(c.split()[0] == command for c in commands if c), command
    for command in ("data list", "data download", "data darcy"):
        assert any(c.startswith(command) for c in commands), command


@pytest.mark.parametrize(("argv", "expected", "argparse_error", "absent"), CASES)
def test_bad_invocation_is_one_clear_line(
    argv, expected, argparse_error, absent, paths, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # anything written by mistake lands here, where it is seen
    before = {name: _snapshot(path) for name, path in paths.items() if path.is_dir()}
    args = [_fill(word, paths, tmp_path) if word != "~" else "" for word in argv.split()]
    code, _, err = _run(args)

    assert code == 2, (code, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    last = lines[-1]
    assert ERROR_LINE.match(last), last
    if argparse_error:
        assert ARGPARSE_LINE.match(last) and lines[0].startswith("usage: tkam"), err
    else:
        assert last.startswith("tkam: error: ") and len(lines) == 1, err
    assert _fill(expected, paths, tmp_path) in last, last
    if absent:
        assert not Path(_fill(absent, paths, tmp_path)).exists(), absent
    # A failing command leaves the inputs as they were, and (but for a lock) nothing new.
    assert {name: _snapshot(paths[name]) for name in before} == before
    assert _snapshot(tmp_path) <= {"empty-run", "empty-run/.lock"}


def test_sample_checks_the_suffix_before_loading_the_run(paths, tmp_path, monkeypatch) -> None:
    """``--out x.jpg`` fails as argparse parses it: the run is never loaded, no folder made."""
    import tkam.cli

    def load_run(*args, **kwargs):
        raise AssertionError("the run was loaded")

    monkeypatch.setattr(tkam.cli, "load_run", load_run)
    out = tmp_path / "a" / "b" / "x.jpg"
    code, _, err = _run(["sample", str(paths["run"]), "--out", str(out)])
    assert code == 2 and "use a .npz or .png file name" in err
    assert list(tmp_path.iterdir()) == []


def test_sample_refuses_more_than_memory_holds(paths, tmp_path, monkeypatch) -> None:
    """A count inside the bound but beyond the machine's memory fails before drawing anything."""
    import tkam.argtypes

    monkeypatch.setattr(tkam.argtypes, "_physical_memory", lambda: 2**20)
    out = tmp_path / "s.npz"
    code, _, err = _run(["sample", str(paths["run"]), "--num", "5000", "--out", str(out)])
    assert code == 2
    assert "tkam: error: --num 5000: 5000 samples of shape (1, 8, 8) need about" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        (None, "{run}/metrics.json is a folder; give a file name; pass --out PATH"),
        ("{file}/metrics.json", "cannot write {file}/metrics.json: {file} is a file, not a folder"),
        ("/proc/tkam-metrics.json", "cannot write /proc/tkam-metrics.json: cannot create anything"),
    ],
    ids=["default-out-is-a-folder", "parent-is-a-file", "proc"],
)
def test_evaluate_refuses_an_unwritable_metrics_file_before_the_work(
    out, expected, paths, tmp_path, monkeypatch
) -> None:
    """Paths that no one, root included, can write a file at (permission bits do not stop root,
    so none is used): ``tkam evaluate`` says so before sampling or training a feature network."""
    run = tmp_path / "run"
    shutil.copytree(paths["run"], run)
    (run / "metrics.json").mkdir()  # where the default --out would go: a folder
    filled = {**paths, "run": run}

    def evaluate_run(*args, **kwargs):
        raise AssertionError("the evaluation started")

    monkeypatch.setattr(metrics_commands, "evaluate_run", evaluate_run)
    argv = ["evaluate", str(run), "--num", "50"]
    if out is not None:
        argv += ["--out", _fill(out, filled, tmp_path)]
    code, stdout, err = _run(argv)
    assert code == 2 and "Traceback" not in err, err
    assert _fill(expected, filled, tmp_path) in err.splitlines()[-1], err
    assert stdout == ""
    assert sorted(p.name for p in (run / "metrics.json").iterdir()) == []


def test_valid_invocations_still_work(paths, tmp_path) -> None:
    """The checks refuse only what is wrong: the same commands with good values succeed."""
    out = tmp_path / "deep" / "s.npz"
    assert _run(["sample", str(paths["run"]), "--num", "3", "--out", str(out)])[0] == 0
    assert out.is_file()
    png = tmp_path / "p.png"
    code, _, err = _run(["plot-prior", str(paths["run"]), "--out", str(png), "--components", "6,2"])
    assert code == 0 and png.is_file(), err
    assert _run(["data", "list", "--root", str(tmp_path / "nowhere")])[0] == 0


# --- random argument lists ------------------------------------------------------------------


def _options(parser: argparse.ArgumentParser) -> dict[tuple[str, ...], list[str]]:
    """The option strings of every (sub)command, keyed by the command words."""
    found: dict[tuple[str, ...], list[str]] = {}

    def walk(p: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        found[words] = [s for action in p._actions for s in action.option_strings]
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, (*words, name))

    walk(parser, ())
    return found


OPTIONS = _options(build_parser())
ODD_TOKENS = [
    "",
    " ",
    "--",
    "-",
    "-1",
    "-1,0",
    "0",
    "0,0",
    "1e400",
    "nan",
    "-inf",
    str(2**64),
    "9" * 5000,
    "x" * 5000,
    "é",
    "日本語",
    "\x00",
    "a\nb",
    "/proc/x.png",
    "/proc/sub/x.npz",
    "/",
    ".",
    "..",
    "~",
    "=",
    "train.seed=1",
    "nope.key=1",
]


# A value: odd tokens, random text, any integer or float, and small counts that pass the checks.
VALUES = st.one_of(
    st.sampled_from(ODD_TOKENS),
    st.text(max_size=30),
    st.integers(-(2**70), 2**70).map(str),
    st.integers(0, 5).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def _chunk(options: list[str]) -> st.SearchStrategy[list[str]]:
    """A few words of an argument list: an option alone, an option and a value (as two words
    or as ``--option=value``), or a value alone."""
    if not options:
        return VALUES.map(lambda value: [value])
    option = st.sampled_from([o for o in options if o not in ("-h", "--help")] or options)
    return st.one_of(
        option.map(lambda o: [o]),
        st.tuples(option, VALUES).map(list),
        st.tuples(option, VALUES).map(lambda pair: [f"{pair[0]}={pair[1]}"]),
        VALUES.map(lambda value: [value]),
        st.just(["--help"]),
    )


def _not_a_config(name: str) -> bool:
    """True when ``tkam train NAME`` finds no config (so it fails before training)."""
    try:
        resolve_config_path(name)
    except (ConfigError, OSError):
        return True
    return False


@st.composite
def fast_failing_argv(draw, paths: dict[str, Path], workdir: Path) -> list[str]:
    """An argument list for a subcommand that fails (or finishes) at once: a run folder that is
    no run, a config that does not exist, a data set or value a download or generation refuses."""
    words = draw(st.sampled_from(sorted(OPTIONS, key=" ".join)))
    options = OPTIONS[words]
    tail = [word for chunk in draw(st.lists(_chunk(options), max_size=5)) for word in chunk]
    not_a_run = st.one_of(
        st.sampled_from(
            [str(paths["folder"]), str(paths["file"]), str(paths["folder"] / "missing")]
        ),
        st.text(max_size=20),
    )
    if words == ():
        return [draw(st.one_of(st.text(max_size=20), st.sampled_from(ODD_TOKENS))), *tail]
    if words == ("train",):
        config = draw(
            st.one_of(st.text(max_size=20), st.sampled_from(["nope", "/nonexistent/x.toml"]))
        )
        with contextlib.chdir(workdir):
            if not _not_a_config(config):
                config = "/nonexistent/x.toml"
        return ["train", config, *tail]
    if words in (("sample",), ("plot",), ("plot-prior",), ("evaluate",), ("inspect",)):
        return [*words, draw(not_a_run), *tail]
    if words == ("data", "download"):
        if draw(st.booleans()):  # a real data set, with a timeout argparse refuses
            bad = draw(st.sampled_from(["0", "-1", "nan", "inf", "-inf", "x", ""]))
            return [*words, draw(st.sampled_from(DATASETS)), *tail, f"--timeout={bad}"]
        name = draw(st.text(max_size=12).filter(lambda t: t not in DATASETS))
        return [*words, name, *tail]
    if words == ("data", "darcy"):
        return [*words, *tail, "--resolution=1"]
    return [*words, *tail]  # data, data list, configs: read only, and quick


def test_random_argument_lists_never_raise(paths, tmp_path_factory) -> None:
    workdir = tmp_path_factory.mktemp("random-argv")

    @settings(
        max_examples=200,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def check(data) -> None:
        argv = data.draw(fast_failing_argv(paths, workdir))
        with contextlib.chdir(workdir):
            try:
                code, _, err = _run(argv)
            except Exception as exc:  # the point: nothing but SystemExit escapes main
                raise AssertionError(f"main({argv!r}) raised {exc!r}") from exc
        assert isinstance(code, int), argv
        assert "Traceback" not in err, (argv, err)
        if code != 0:  # the error line (a value with a newline in it may follow on more lines)
            assert any(ERROR_LINE.match(line) for line in err.splitlines()), (argv, err)

    check()
    # Whatever failed left nothing in the working folder (the probes clean up after themselves).
    assert os.listdir(workdir) == []
