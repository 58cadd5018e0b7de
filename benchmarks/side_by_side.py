"""T-KAM, the VAE and the latent EBM side by side on Fashion-MNIST: sweeps, seeds, two comparisons.

Two comparisons, kept apart:

* ``shared``: the paper's controlled comparison. Every model uses the ``fmnist`` config's KAN
  generator (81-162-784) and Gaussian likelihood; only the prior and the posterior differ. Rows:
  T-KAM with every posterior (importance sampling with fresh and with proposal negatives, ULA,
  autoMALA, thermodynamic integration, and the mixture prior), the VAE and the latent EBM, each
  baseline with its packaged defaults (the settings the sweeps chose).
* ``standard``: each model on a standard architecture of its own, the numbers a reader already
  knows: the textbook VAE (MLP 784-400-20 encoder, 20-400-784 decoder, Bernoulli likelihood, Adam
  1e-3, batch 100), Pang et al.'s latent EBM (energy MLP 20-200-200-1 on z) and T-KAM's
  univariate prior, both on the same 20-400-784 Bernoulli decoder.

Sweeps (``sweep vae`` / ``sweep lebm``) train the baselines on the shared generator for 1,000
updates on the first 50,000 training images and score FID against the held-out last 10,000 of
the training file (``tkam evaluate --real held-out``): a validation split, never the test split.
Tables train on all 60,000 training images (the official test images for the log-likelihood),
three seeds per row whose run takes under ten minutes, one elsewhere.

Every run is an ordinary ``tkam train`` folder under ``--runs``; a finished run is not trained
again and a killed one resumes from its last checkpoint, so the study can be stopped and
continued. Each evaluated run's figures are kept in ``benchmarks/side_by_side.json`` (committed),
from which ``report`` writes the tables to RESULTS.md and the sample grids to
``benchmarks/figures/side_by_side_<comparison>.png``.

    python benchmarks/side_by_side.py sweep vae|lebm [--steps 1000] [--jobs 2]
    python benchmarks/side_by_side.py table shared|standard [--rows ...] [--seeds 1 2 3]
        [--steps 5000] [--jobs 2]
    python benchmarks/side_by_side.py time-matched [--rows ...]   # equal training time
    python benchmarks/side_by_side.py generation                  # quiet-machine timings
    python benchmarks/side_by_side.py report
"""

from __future__ import annotations

import argparse
import csv
import datetime
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import machine, median_time, write_section

HERE = Path(__file__).parent
STORE = HERE / "side_by_side.json"
FIGURES = HERE / "figures"
THREADS = 1  # one intra-op thread per training: two trainings share the two cores

# The data of the tables (all 60,000 training images; 1,000 official test images) and of the
# sweeps (the first 50,000 training images; the next 10,000 are the validation split).
TABLE_DATA = ["data.split=official", "data.num_train=0", "data.num_test=1000"]
SWEEP_DATA = ["data.split=spec", "data.num_train=50000", "data.num_test=10000"]

# The standard architectures: the textbook VAE's 20-400-784 decoder with a Bernoulli likelihood.
MLP_DECODER = [
    "generator.kind=mlp",
    "generator.widths=[20,400]",
    "generator.likelihood=bernoulli",
    "generator.noise=0",
]


@dataclass(frozen=True)
class Row:
    """One model of a comparison: a label and its settings beyond the ``fmnist`` config."""

    label: str
    settings: list[str] = field(default_factory=list)


SHARED = {
    "tkam-is": Row("T-KAM, importance sampling (N=100), fresh negatives"),
    "tkam-is-proposals": Row(
        "T-KAM, importance sampling (N=100), proposal negatives", ["train.negatives=proposals"]
    ),
    "tkam-ula": Row("T-KAM, Langevin (ULA, 25 steps of 0.005)", ["posterior.sampler=ula"]),
    # The reference's Langevin runs (SVHN, CIFAR-10, CelebA) use a likelihood sigma of 0.3, its
    # importance-sampling runs (MNIST, Fashion-MNIST) 0.1; both losses at 0.3 for a fair pair.
    "tkam-is-sigma0.3": Row(
        "T-KAM, importance sampling (N=100), likelihood sigma 0.3", ["generator.variance=0.3"]
    ),
    "tkam-ula-noise-sigma0.3": Row(
        "T-KAM, Langevin (ULA, 25 steps of 0.005) on the prior's noise, likelihood sigma 0.3",
        ["posterior.sampler=ula", "posterior.space=noise", "generator.variance=0.3"],
    ),
    "tkam-ula-noise-sigma0.5": Row(
        "T-KAM, Langevin (ULA, 25 steps of 0.005) on the prior's noise, likelihood sigma 0.5",
        ["posterior.sampler=ula", "posterior.space=noise", "generator.variance=0.5"],
    ),
    "tkam-automala": Row("T-KAM, Langevin (autoMALA, 25 steps)", ["posterior.sampler=automala"]),
    "tkam-automala-noise-sigma0.5": Row(
        "T-KAM, Langevin (autoMALA, 25 steps) on the prior's noise, likelihood sigma 0.5",
        ["posterior.sampler=automala", "posterior.space=noise", "generator.variance=0.5"],
    ),
    "tkam-thermo": Row(
        "T-KAM, thermodynamic integration (4 temperatures, ULA 10 steps of 0.005)",
        [
            "posterior.sampler=ula",
            "posterior.steps=10",
            "thermodynamic.num_temps=4",
            "thermodynamic.p_start=10",
            "thermodynamic.p_end=3",
        ],
    ),
    "tkam-mixture": Row(
        "T-KAM, mixture prior (importance sampling)",
        ["prior.mixture=true", "prior.reference=gaussian"],
    ),
    "vae": Row("VAE (packaged defaults)", ["model.kind=vae"]),
    "lebm": Row("latent EBM (packaged defaults)", ["model.kind=lebm"]),
}
STANDARD = {
    "std-vae": Row(
        "textbook VAE (MLP 784-400-20, Bernoulli, KL weight 1)",
        ["model.kind=vae", "model.encoder_hidden=[400]", "model.kl_weight=1", *MLP_DECODER],
    ),
    # Pang et al.'s energy learning rate: with the packaged 5e-4 (tuned on the KAN generator)
    # this row's energy diverged after 4,000 updates (RESULTS, "Side by side: findings").
    "std-lebm": Row(
        "latent EBM, Pang et al.'s energy MLP 20-200-200-1 on z, their energy rate 2e-5",
        ["model.kind=lebm", "model.energy_learning_rate=2e-5", *MLP_DECODER],
    ),
    "std-tkam": Row(
        "T-KAM, univariate prior P=10 -> Q=20, importance sampling",
        ["prior.widths=[10,20]", *MLP_DECODER],
    ),
}
COMPARISONS = {"shared": SHARED, "standard": STANDARD}
ROWS = {**SHARED, **STANDARD}

# The latent EBM's learning rates chosen by the first stage of its sweep.
LEBM_RATES = ["model.energy_learning_rate=5e-4", "train.learning_rate=1e-3"]

# The sweeps: one knob at a time around a centre, every value on the validation split.
SWEEPS = {
    "vae": {
        "base": ["model.kind=vae"],
        "knobs": {
            "model.kl_weight": ["1", "4", "16", "64", "256"],
            "model.encoder_hidden": ["[162]", "[400]", "[800,400]"],
        },
        "grid": "all",  # every combination: 12 runs of about a minute each
    },
    # The latent EBM in two stages, each a cross around a centre (the first value of every
    # knob): its two learning rates (the energy's first from Pang et al.'s 2e-5 up, then the
    # centre moved to the best, 5e-4, and the generator's rate and 2e-3 tried around it), then
    # its Langevin settings around the best pair (LEBM_RATES; that run is the second stage's
    # centre).
    "lebm": {
        "base": ["model.kind=lebm"],
        "knobs": {
            "model.energy_learning_rate": ["5e-4", "2e-5", "1e-4", "2e-3"],
            "train.learning_rate": ["1e-3", "1e-4", "3e-4"],
        },
        "grid": "cross",
    },
    "lebm-langevin": {
        "base": ["model.kind=lebm", *LEBM_RATES],
        "knobs": {
            "model.prior_steps": ["60", "20", "100"],
            "model.posterior_step_size": ["0.1", "0.05", "0.2"],
        },
        "grid": "cross",
        "centre_from": "lebm",
    },
}


def store() -> dict:
    return json.loads(STORE.read_text()) if STORE.exists() else {}


def save(entries: dict) -> None:
    STORE.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")


def run_steps(run: Path) -> int:
    """The last step in a run's ``loss.csv`` (0 if none)."""
    path = run / "loss.csv"
    if not path.exists():
        return 0
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    return int(rows[-1]["Step"]) if rows else 0


def finished(run: Path, steps: int) -> bool:
    return (run / "model.safetensors").exists() and run_steps(run) >= steps


def train_command(run: Path, settings: list[str], steps: int, seed: int, data: list[str]):
    values = [
        *settings,
        *data,
        f"train.seed={seed}",
        f"train.threads={THREADS}",
        f"train.max_steps={steps}",
        f"train.log_every={max(steps // 20, 1)}",
        f"train.checkpoint_every={max(steps // 50, 1)}",  # slow rows resume after a stop
    ]
    args = ["train", "fmnist", "--out", str(run), "--no-progress"]
    args += (
        ["--resume"] if (run / "checkpoints").is_dir() and any(run.glob("checkpoints/*")) else []
    )
    args += [item for value in values for item in ("--set", value)]
    return args


def tkam(args: list[str], log: Path | None = None) -> subprocess.Popen:
    print("$ tkam " + " ".join(args), flush=True)
    out = log.open("a") if log else None
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    return subprocess.Popen(
        [sys.executable, "-m", "tkam.cli", *args], stdout=out, stderr=subprocess.STDOUT, env=env
    )


@dataclass
class Job:
    """Train (unless finished), then evaluate (unless scored) one run; record its figures."""

    key: str  # the store's key
    run: Path
    settings: list[str]
    steps: int
    seed: int
    data: list[str]
    real: str  # FID against "train" (tables) or "held-out" (sweeps)
    meta: dict


def evaluate_args(job: Job) -> list[str]:
    if job.real == "held-out":  # sweeps: sample metrics against the validation split only
        return [
            "evaluate",
            str(job.run),
            "--num",
            "1000",
            "--real",
            job.real,
            "--importance-samples",
            "0",
        ]
    return ["evaluate", str(job.run), "--num", "3000"]


def run_jobs(jobs: list[Job], parallel: int) -> None:
    """Run ``jobs`` two (``parallel``) at a time, each a train-then-evaluate chain."""
    entries = store()
    pending = [j for j in jobs if entries.get(j.key, {}).get("steps") != j.steps]
    running: list[tuple[Job, subprocess.Popen, str, float]] = []
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            if store().get(job.key, {}).get("steps") == job.steps:
                continue  # another process of the study finished it meanwhile
            job.run.parent.mkdir(parents=True, exist_ok=True)
            log = job.run.with_name(job.run.name + ".log")
            if finished(job.run, job.steps):
                running.append((job, tkam(evaluate_args(job), log), "evaluate", time.time()))
            else:
                args = train_command(job.run, job.settings, job.steps, job.seed, job.data)
                running.append((job, tkam(args, log), "train", time.time()))
        for item in list(running):
            job, process, phase, start = item
            if process.poll() is None:
                continue
            running.remove(item)
            log = job.run.with_name(job.run.name + ".log")
            if process.returncode != 0:
                print(f"{job.key}: {phase} failed ({process.returncode}); see {log}", flush=True)
                continue
            print(f"{job.key}: {phase} done in {time.time() - start:.0f} s", flush=True)
            if phase == "train":
                running.append((job, tkam(evaluate_args(job), log), "evaluate", time.time()))
            else:
                record(job)
        time.sleep(2)


def seconds_per_update(run: Path) -> float:
    """Training seconds per update from the run's ``loss.csv`` (first logged row to last)."""
    with (run / "loss.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    first, last = rows[0], rows[-1]
    return (float(last["Time (s)"]) - float(first["Time (s)"])) / (
        int(last["Step"]) - int(first["Step"])
    )


def record(job: Job) -> None:
    metrics = json.loads((job.run / "metrics.json").read_text())
    keep = (
        "fid_infinity",
        "kid_infinity",
        "fid_at_n",
        "class_entropy",
        "log_likelihood_nats_per_dim",
        "log_likelihood_test_set_standard_error",
        "iwae_bound_nats_per_dim",
        "feature_network",
        "feature_network_accuracy",
        "real_set",
    )
    entry = {k: metrics.get(k) for k in keep}
    entry.update(job.meta)
    entry.update(
        run=str(job.run),
        steps=job.steps,
        seed=job.seed,
        seconds_per_update=seconds_per_update(job.run),
        date=str(datetime.date.today()),
    )
    entries = store()
    entries[job.key] = entry
    save(entries)
    print(
        f"{job.key}: FID-inf {entry['fid_infinity']:.1f}, class entropy "
        f"{entry['class_entropy']:.2f}",
        flush=True,
    )


# ------------------------------------------------------------------------------------------------
# Commands


def sweep_jobs(model: str, runs: Path, steps: int) -> list[Job]:
    spec = SWEEPS[model]
    knobs = spec["knobs"]
    if spec["grid"] == "all":
        combos = [dict(zip(knobs, values)) for values in itertools.product(*knobs.values())]
    else:  # a cross: the centre, then one knob at a time through its other values
        centre = {k: values[0] for k, values in knobs.items()}
        combos = [] if "centre_from" in spec else [centre]
        combos += [{**centre, k: v} for k, values in knobs.items() for v in values[1:]]
    jobs, seen = [], set()
    for combo in combos:
        settings = [f"{k}={v}" for k, v in combo.items()]
        name = "-".join(f"{k.split('.')[-1]}={v}" for k, v in combo.items())
        if name in seen:
            continue
        seen.add(name)
        key = f"sweep/{model}/{name}"
        run = runs / "sweep" / model / name.replace("[", "").replace("]", "").replace(",", "_")
        meta = {"sweep": model, "knobs": combo}
        jobs.append(Job(key, run, spec["base"] + settings, steps, 1, SWEEP_DATA, "held-out", meta))
    return jobs


def table_jobs(comparison: str, rows: list[str], seeds: list[int], runs: Path, steps: int):
    jobs = []
    for name in rows:
        for seed in seeds:
            key = f"{comparison}/{name}/{steps}/seed{seed}"
            run = runs / comparison / f"{name}-{steps}-seed{seed}"
            meta = {"comparison": comparison, "row": name, "budget": "updates"}
            settings = ROWS[name].settings
            jobs.append(Job(key, run, settings, steps, seed, TABLE_DATA, "train", meta))
    return jobs


def time_matched_jobs(rows: list[str], runs: Path, steps: int, reference: str) -> list[Job]:
    """Each row for as many updates as ``reference`` needs ``steps`` for, in training time (from
    the seconds per update of the equal-update runs; of its seed-1 run's ``loss.csv`` so far
    while that run is still training)."""
    entries = store()
    budget = _mean([e["seconds_per_update"] for e in _entries(entries, "shared", reference, steps)])
    jobs = []
    for name in rows:
        found = _entries(entries, "shared", name, steps)
        unfinished = runs / "shared" / f"{name}-{steps}-seed1"
        if found:
            per_update = _mean([e["seconds_per_update"] for e in found])
        elif run_steps(unfinished) > 1:
            per_update = seconds_per_update(unfinished)
            print(f"{name}: {per_update:.2f} s per update from {unfinished} so far")
        else:
            print(f"{name}: no equal-update run yet; skipped")
            continue
        matched = max(int(round(steps * budget / per_update)), 20)
        key = f"shared/{name}/time{steps}/seed1"
        run = runs / "shared" / f"{name}-time{steps}-seed1"
        meta = {"comparison": "shared", "row": name, "budget": f"time of {reference}"}
        jobs.append(Job(key, run, ROWS[name].settings, matched, 1, TABLE_DATA, "train", meta))
    return jobs


def _entries(entries: dict, comparison: str, row: str, steps: int) -> list[dict]:
    prefix = f"{comparison}/{row}/{steps}/"
    return [e for k, e in entries.items() if k.startswith(prefix)]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def generation_seconds(run: Path) -> float:
    """Median seconds of one batch of 1,000 samples from a run's model (5 after 2 warm-up)."""
    from tkam.runs import load_run

    _, model = load_run(run)
    rng = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return median_time(lambda: model.sample(1000, rng, batch_size=1000), 5, warmup=2)[0]


def generation(runs_prefix: str) -> None:
    """Median seconds of 1,000 samples in one batch, in this process (run it on quiet cores)."""
    torch.set_num_threads(2)
    entries = store()
    for key, entry in sorted(entries.items()):
        if "/seed1" not in key or "sweep/" in key or not key.startswith(runs_prefix):
            continue
        seconds = generation_seconds(Path(entry["run"]))
        entry["generation_ms"] = seconds * 1e3
        entry["generation_threads"] = 2
        print(f"{key}: {seconds * 1e3:.0f} ms", flush=True)
    save(entries)


# ------------------------------------------------------------------------------------------------
# Report


def _spread(values: list[float | None], digits: str) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{format(values[0], digits)}*"
    return f"{format(statistics.mean(values), digits)} ± {format(statistics.stdev(values), digits)}"


def table_rows(comparison: str, rows: dict[str, Row], budget: str) -> list[str]:
    entries = store()
    lines = []
    for name, row in rows.items():
        found = [
            e for k, e in sorted(entries.items()) if k.startswith(f"{comparison}/{name}/{budget}/")
        ]
        if not found:
            continue
        gen = [e.get("generation_ms") for e in found if e.get("generation_ms")]
        iwae = [e.get("iwae_bound_nats_per_dim") for e in found]
        lines.append(
            f"| {row.label} | {found[0]['steps']} | {len(found)} |"
            f" {_spread([e['fid_infinity'] for e in found], '.1f')} |"
            f" {_spread([e['kid_infinity'] for e in found], '.1f')} |"
            f" {_spread([e['log_likelihood_nats_per_dim'] for e in found], '.3f')} |"
            f" {_spread(iwae, '.3f') if any(v is not None for v in iwae) else 'n/a'} |"
            f" {_spread([e['class_entropy'] for e in found], '.2f')} |"
            f" {_spread([e['seconds_per_update'] for e in found], '.3f')} |"
            f" {_spread(gen, '.0f') if gen else 'n/a'} |"
        )
    return lines


TABLE_HEAD = [
    "| model | updates | seeds | FID-inf | KID-inf | test log-lik. (nats/dim) |"
    " IWAE bound (nats/dim) | class entropy (max 2.30) | s / update | generation of 1,000 (ms) |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def sweep_table(model: str) -> list[str]:
    entries = store()
    spec = SWEEPS[model]
    knobs = list(spec["knobs"])
    found = [e for k, e in entries.items() if k.startswith(f"sweep/{model}/")]
    if "centre_from" in spec:  # the centre is a run of the earlier stage, at its knob values
        settings = [s for s in spec["base"] if "=" in s and not s.startswith("model.kind")]
        centre = dict(s.split("=") for s in settings)
        for e in entries.values():
            if e.get("sweep") == spec["centre_from"] and e["knobs"] == centre:
                found.append({**e, "knobs": {k: v[0] for k, v in spec["knobs"].items()}})
    found.sort(key=lambda e: e["fid_infinity"])
    lines = [
        "| " + " | ".join(knobs) + " | validation FID-inf | class entropy | s / update |",
        "|" + "---|" * (len(knobs) + 3),
    ]
    for e in found:
        cells = [e["knobs"].get(k, "(default)") for k in knobs]
        lines.append(
            "| " + " | ".join(cells) + f" | {e['fid_infinity']:.1f} | {e['class_entropy']:.2f} |"
            f" {e['seconds_per_update']:.3f} |"
        )
    return lines


def final_grid(run: Path) -> np.ndarray:
    """The run's last sample grid (``samples/step_*.png``)."""
    path = sorted((run / "samples").glob("step_*.png"))[-1]
    return np.asarray(Image.open(path).convert("RGB"))


def figure(budget: str) -> Path | None:
    """The final sample grid of every row's seed-1 run, both comparisons, in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = store()
    runs = []
    for comparison, rows in COMPARISONS.items():
        for name, row in rows.items():
            key = f"{comparison}/{name}/{budget}/seed1"
            if key in entries and Path(entries[key]["run"]).exists():
                runs.append((f"{comparison}: {row.label}", Path(entries[key]["run"])))
    if not runs:
        return None
    columns = min(len(runs), 4)
    nrows = -(-len(runs) // columns)
    fig, axes = plt.subplots(
        nrows, columns, figsize=(4.5 * columns, 5.0 * nrows), layout="constrained", squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, run) in zip(axes.flat, runs):
        ax.imshow(final_grid(run))
        ax.set_title(textwrap.fill(label, 45), fontsize=9)
    path = FIGURES / f"side_by_side_fmnist_{budget}.png"
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


def report(steps: int, remark: str) -> None:
    entries = store()
    any_entry = next(iter(entries.values()), {})
    head = (
        f"Measured on {machine().split(';')[0]}, torch {torch.__version__}; every training with"
        " one intra-op thread beside one to three other trainings of the study on the two cores,"
        " so the s / update column compares models only roughly (the quiet figures are in the"
        " sections on training steps). Runs and figures: `benchmarks/side_by_side.json`"
        f" (written by `python benchmarks/side_by_side.py ...`). FID/KID on the features of"
        f" `{any_entry.get('feature_network')}` (the project's Fashion-MNIST classifier, held-out"
        f" accuracy {any_entry.get('feature_network_accuracy') or float('nan'):.3f});"
        " class entropy: entropy of the classifier's predicted classes over the generated"
        " images (ln 10 = 2.30 when all ten classes are equally frequent). KID is the unbiased"
        " squared MMD in these features (not rescaled)."
        " Mean ± standard deviation over seeds; a value marked * is one seed."
    )
    for model in SWEEPS:
        if any(k.startswith(f"sweep/{model}/") for k in entries):
            body = [
                head,
                "",
                f"Command: `python benchmarks/side_by_side.py sweep {model}`:"
                " the shared KAN generator of `fmnist`, 1,000 updates on the first"
                " 50,000 training images, `tkam evaluate RUN --num 1000 --real held-out`: FID"
                " against the validation split (training-file images 50,001-60,000), never the"
                " test split. Sorted by validation FID-inf.",
                "",
                *sweep_table(model),
            ]
            write_section(f"Side by side: the {model.upper()} sweep (cpu)", "\n".join(body))
    titles = {
        "shared": "Side by side, shared KAN generator (cpu)",
        "standard": "Side by side, standard architectures (cpu)",
    }
    for comparison, rows in COMPARISONS.items():
        lines = table_rows(comparison, rows, str(steps))
        if not lines:
            continue
        body = [
            head,
            "",
            f"Command: `python benchmarks/side_by_side.py table {comparison} --steps {steps}`,"
            " then `... generation` on quiet cores (two threads) and `... report`."
            f" {steps} updates at batch 100 on all 60,000 training images; `tkam evaluate RUN"
            " --num 3000`: FID/KID-inf against training images, log-likelihood on 1,000 official"
            " test images by importance sampling with K=1000 prior samples (one estimator for"
            " all; the VAE's importance-weighted bound beside it).",
            "",
            "Equal number of updates:",
            "",
            *TABLE_HEAD,
            *lines,
        ]
        timed = table_rows(comparison, rows, f"time{steps}")
        if timed:
            body += [
                "",
                "Equal training time (the updates T-KAM with importance sampling makes in"
                f" {steps} updates' time, from the rows' seconds per update above):",
                "",
                *TABLE_HEAD,
                *timed,
            ]
        path = figure(str(steps))
        if path:
            body += ["", f"Sample grids of every row (seed 1): `{path.relative_to(HERE.parent)}`."]
        if remark:
            body += ["", remark]
        write_section(titles[comparison], "\n".join(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=("sweep", "table", "time-matched", "generation", "report")
    )
    parser.add_argument("which", nargs="?", help="sweep: vae or lebm; table: shared or standard")
    parser.add_argument("--rows", nargs="+", help="table rows (default: all of the comparison)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--steps", type=int, help="updates (sweeps 1000, tables 5000)")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once")
    parser.add_argument("--runs", default="runs/side", help="folder of the study's runs")
    parser.add_argument("--remark", default="", help="a paragraph appended to the tables")
    parser.add_argument(
        "--only", nargs="+", default=[], help="run only the jobs whose key contains one of these"
    )
    args = parser.parse_args()
    runs = Path(args.runs)

    def chosen(jobs: list[Job]) -> list[Job]:
        return [j for j in jobs if not args.only or any(o in j.key for o in args.only)]

    if args.command == "sweep":
        run_jobs(chosen(sweep_jobs(args.which, runs, args.steps or 1000)), args.jobs)
    elif args.command == "table":
        rows = args.rows or list(COMPARISONS[args.which])
        jobs = table_jobs(args.which, rows, args.seeds, runs, args.steps or 5000)
        run_jobs(chosen(jobs), args.jobs)
    elif args.command == "time-matched":
        rows = args.rows or ["tkam-ula", "tkam-automala", "tkam-thermo", "lebm"]
        run_jobs(chosen(time_matched_jobs(rows, runs, args.steps or 5000, "tkam-is")), args.jobs)
    elif args.command == "generation":
        generation(args.which or "")
    else:
        report(args.steps or 5000, args.remark)


if __name__ == "__main__":
    main()
