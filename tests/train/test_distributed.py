"""Scale-out and crash safety: torchrun data parallelism, SIGKILL and resume, precision options."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import tiny_config
from tkam.config import dumps_toml
from tkam.train import fit
from tkam.train.callbacks import Callback
from tkam.train.checkpoint import read_metadata
from tkam.train.distributed import intra_op_threads


def _write_config(tmp_path, **sections):
    path = tmp_path / "tiny.toml"
    path.write_text(dumps_toml(tiny_config(**sections)))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WORLD_SIZE", None)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _train_command(config_path, out) -> list[str]:
    """``python -m tkam train CONFIG --out OUT --no-progress``."""
    command = [sys.executable, "-m", "tkam", "train", str(config_path), "--out", str(out)]
    return [*command, "--no-progress"]


def _torchrun(config_path, out, *extra: str) -> None:
    """``torchrun --standalone --nproc_per_node=2 -m tkam train CONFIG --out OUT ...``."""
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"),
        *("-m", "tkam", "train", str(config_path), "--out", str(out), "--no-progress", *extra),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_process_gloo_run_matches_one_process_with_two_shards(tmp_path) -> None:
    config_path = _write_config(tmp_path, train={"max_steps": 5, "log_every": 5})
    _torchrun(config_path, tmp_path / "ddp")
    torch.set_num_threads(1)
    config = tiny_config(train={"max_steps": 5, "log_every": 5, "accumulate": 2})
    fit(config, tmp_path / "single", progress=False)
    ddp = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    single = load_file(str(tmp_path / "single" / "model.safetensors"))
    assert ddp.keys() == single.keys()
    for name in ddp:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-4, atol=1e-5, msg=name)
    # Only rank 0 wrote files, and the checkpoint holds both ranks' streams.
    newest = sorted((tmp_path / "ddp" / "checkpoints").glob("*.safetensors"))[-1]
    assert read_metadata(newest)["shards"] == "2"
    assert {"rng/shard_0", "rng/shard_1", "rng/shared"} <= set(load_file(str(newest)))


def test_two_process_automala_run_keeps_each_shards_step_sizes(tmp_path) -> None:
    # Each shard keeps its own adapted step sizes, so 2 processes match one with 2 shards; the
    # checkpoint holds both shards' (gathered from both ranks).
    sections = {"posterior": {"sampler": "automala", "steps": 3}, "grid_update": {"frequency": 100}}
    config_path = _write_config(tmp_path, train={"max_steps": 4, "log_every": 4}, **sections)
    _torchrun(config_path, tmp_path / "ddp")
    torch.set_num_threads(1)
    config = tiny_config(train={"max_steps": 4, "log_every": 4, "accumulate": 2}, **sections)
    fit(config, tmp_path / "single", progress=False)
    ddp = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    single = load_file(str(tmp_path / "single" / "model.safetensors"))
    for name in ddp:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-4, atol=1e-5, msg=name)
    newest = sorted((tmp_path / "ddp" / "checkpoints").glob("*.safetensors"))[-1]
    tensors = load_file(str(newest))
    assert tensors["sampler/shard_0"].shape == tensors["sampler/shard_1"].shape == (10,)
    assert not torch.equal(tensors["sampler/shard_0"], tensors["sampler/shard_1"])


def test_sigkill_at_a_random_moment_then_resume_is_bitwise_exact(tmp_path) -> None:
    steps = 120
    config_path = _write_config(
        tmp_path, train={"max_steps": steps, "log_every": 40, "checkpoint_every": 1}
    )
    run = tmp_path / "killed"
    command = _train_command(config_path, run)
    process = subprocess.Popen(command, env=_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((run / "checkpoints").glob("step_*.safetensors")):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(random.Random(7).uniform(0.2, 1.5))  # seed 7: a reproducible "random" moment
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "model.safetensors").exists(), "the run finished before it was killed"
    resumed = subprocess.run([*command, "--resume"], env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = subprocess.run(
        _train_command(config_path, tmp_path / "straight"),
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert straight.returncode == 0, straight.stderr[-3000:]
    a = load_file(str(run / "model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "model.safetensors"))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    steps_logged = [line.split(",")[5] for line in (run / "loss.csv").read_text().splitlines()[1:]]
    assert steps_logged == ["1", "40", "80", "120"]  # no step logged twice after the resume


def test_sigterm_writes_a_final_checkpoint(tmp_path) -> None:
    config_path = _write_config(tmp_path, train={"max_steps": 100000, "log_every": 0})
    run = tmp_path / "run"
    process = subprocess.Popen(
        _train_command(config_path, run),
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list((run / "checkpoints").glob("step_*.safetensors")):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err  # 128 + SIGTERM, as the shell reports it
    assert "resume with --resume" in err
    newest = sorted((run / "checkpoints").glob("step_*.safetensors"))[-1]
    assert int(newest.stem.split("_")[1]) > 1  # a checkpoint beyond the step-1 one was written


def test_bf16_generator_gives_finite_losses(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 4, "precision": "bf16", "log_every": 2})
    model = fit(config, tmp_path / "bf16", progress=False)
    rows = (tmp_path / "bf16" / "loss.csv").read_text().splitlines()[1:]
    assert all(float(row.split(",")[2]) == float(row.split(",")[2]) for row in rows)  # no NaN
    assert model.bf16
    z = model.prior.sample(3, torch.Generator().manual_seed(0))
    assert z.dtype == torch.float32 and model.decode(z).dtype == torch.float32


@pytest.mark.slow
def test_compiled_kernels_give_finite_losses(tmp_path) -> None:
    config = tiny_config(train={"max_steps": 3, "compile": True, "log_every": 3})
    fit(config, tmp_path / "compiled", progress=False)
    row = (tmp_path / "compiled" / "loss.csv").read_text().splitlines()[-1].split(",")
    assert float(row[2]) == float(row[2])


def test_two_process_run_resumes_exactly(tmp_path) -> None:
    # Stop a 2-process run at step 3, resume it to step 6: the same parameters as 6 straight steps.
    full = _write_config(tmp_path, train={"max_steps": 6, "log_every": 3})
    _torchrun(full, tmp_path / "straight")
    half = tmp_path / "half.toml"
    half.write_text(dumps_toml(tiny_config(train={"max_steps": 3, "log_every": 3})))
    _torchrun(half, tmp_path / "split")
    _torchrun(full, tmp_path / "split", "--resume")
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "model.safetensors"))
    for name in a:
        assert torch.equal(a[name], b[name]), name


# --- intra-op threads ---


def test_threads_given_are_used() -> None:
    assert intra_op_threads(3, {"LOCAL_WORLD_SIZE": "4", "OMP_NUM_THREADS": "1"}) == 3


def test_several_local_processes_split_the_cores() -> None:
    cores = len(os.sched_getaffinity(0))
    assert intra_op_threads(0, {"LOCAL_WORLD_SIZE": "2"}) == max(1, cores // 2)
    assert intra_op_threads(0, {"LOCAL_WORLD_SIZE": str(4 * cores)}) == 1


def test_omp_num_threads_or_a_single_process_keep_torchs_choice() -> None:
    assert intra_op_threads(0, {"LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}) is None
    assert intra_op_threads(0, {"LOCAL_WORLD_SIZE": "1"}) is None
    assert intra_op_threads(0, {}) is None


class _Threads(Callback):
    def __init__(self) -> None:
        self.seen: set[int] = set()

    def on_step(self, run, output) -> None:
        self.seen.add(torch.get_num_threads())


def test_fit_trains_with_train_threads_and_restores_the_callers(tmp_path) -> None:
    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2
    threads = _Threads()
    config = tiny_config(train={"max_steps": 2, "threads": wanted})
    fit(config, tmp_path / "run", progress=False, callbacks=[threads])
    assert threads.seen == {wanted}
    assert torch.get_num_threads() == before
