"""The learning signal of the T-KAM prior over training: why the learned components stay near pi_0.

The prior's gradient in every maximum-likelihood loss is a difference of two phases,
``d = E_post[grad log p(z)] - E_prior[grad log p(z)]`` (positives from the posterior, negatives
from the prior). This script trains a run (``tkam train``'s trainer and files, plus a probe) and at
chosen updates measures, on ``--batches`` training batches drawn with the probe's own seed (the
run's parameters and random streams are untouched):

* the two phases' sizes ``|g_pos|``, ``|g_neg|`` and their difference's ``|d|`` (per batch, mean);
* the signal ratio ``|mean_k d_k| / sqrt(trace Cov(d) / K)`` over the K batches: about 1 when the
  batch differences are noise around zero, large when they agree on a direction;
* how far the aggregate posterior sits from the prior: for every component (q, p) the t statistic
  of the difference between the (importance-weighted) mean of the positives and the mean of the
  negatives over the K batches; the root mean square over components is about
  sqrt((K - 1) / (K - 3)) (1.18 for K = 8: t with K - 1 degrees of freedom) when the positives
  are distributed as prior draws;
* the effective sample size and the number of distinct proposals carrying the positives
  (importance sampling);
* what a grid update does to the learned shape: the median total variation from pi_0 of a copy of
  the prior after one refit on the trainer's grid latents (beside the prior's own, ``tv_median``).

Each probe row goes to ``OUT/signal.csv``; ``report`` tabulates several runs into RESULTS.md
("Prior learning signal (cpu)") with a figure of the curves.

``chains`` looks at a trained run's posterior chains (the run's own posterior settings, 200
training images, seed 0) against as many prior samples: how the generator inputs
``h_q = sum_p z_qp`` spread (the five largest eigenvalues of their covariance, and the mean
standard deviation per q), the components' own spread, the share of components within 2% of a
wall of the support, and the reconstruction error; written to ``OUT/chains.json``, tabulated by
``report`` beside the run's ``tkam evaluate`` figures. ``report --keep`` adds or replaces the
given runs' rows and keeps the rest of the section (runs whose directories are gone).

    python benchmarks/prior_signal.py train OUT [--steps 1000] [--probe-every 200] [--set k=v ...]
    python benchmarks/prior_signal.py chains OUT [OUT ...]
    python benchmarks/prior_signal.py report OUT [OUT ...] [--keep] [--remark FILE]
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import machine, merge_table_rows, read_section, write_section  # noqa: E402
from tkam.config import load_config  # noqa: E402
from tkam.data import load_dataset  # noqa: E402
from tkam.losses import posterior_samples, posterior_settings  # noqa: E402
from tkam.posterior.importance import importance_resample  # noqa: E402
from tkam.prior.learned import component_divergences  # noqa: E402
from tkam.runs import load_run  # noqa: E402
from tkam.train.callbacks import Callback, default_callbacks  # noqa: E402
from tkam.train.loop import fit  # noqa: E402
from tkam.train.step import grid_latents  # noqa: E402

FIGURE = Path(__file__).with_name("figures") / "prior_signal.png"
COLUMNS = [
    "step",
    "tv_median",
    "pos_norm",
    "neg_norm",
    "diff_norm",
    "signal_ratio",
    "posterior_shift_rms",
    "ess",
    "distinct_positives",
    "refit_tv_after",
]


def _flat_grad(value: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    grads = torch.autograd.grad(value, params, allow_unused=True)
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]
    )


def phases(model, config, x: torch.Tensor, rng: torch.Generator) -> dict:  # noqa: ANN001
    """Positives (latents and weights), negatives and both phases' gradients for one batch."""
    prior = model.prior
    params = [p for p in prior.parameters() if p.requires_grad]
    out: dict = {}
    if config.train.loss == "importance":
        n = config.train.importance_samples
        with torch.no_grad():
            z = prior.sample(n, rng)
            log_lik = model.likelihood.log_likelihood_matrix(
                x, model.likelihood.noised(model.decode(z), rng)
            )
        sir = importance_resample(
            log_lik, config.train.resampling_threshold, config.train.resampler, rng
        )
        weight = sir.proposal_weights().mean(0)
        out["ess"] = float(sir.ess.mean())
        out["distinct_positives"] = int((weight > 0).sum())
        negatives = prior.sample(n, rng)
    else:  # Langevin or thermodynamic: one posterior chain per datum at t = 1
        z = posterior_samples(model, x, posterior_settings(config), rng)
        weight = torch.full((len(x),), 1.0 / len(x))
        out["ess"] = math.nan
        out["distinct_positives"] = len(x)
        negatives = prior.sample(len(x), rng)
    with torch.enable_grad():
        out["g_pos"] = _flat_grad(prior.weighted_log_prior(z, weight), params)
        uniform = torch.full((len(negatives),), 1.0 / len(negatives))
        out["g_neg"] = _flat_grad(prior.weighted_log_prior(negatives, uniform), params)
    flat = z.reshape(len(z), -1)
    out["pos_mean"] = (weight[:, None] * flat).sum(0)
    out["neg_mean"] = negatives.reshape(len(negatives), -1).mean(0)
    return out


def median_tv(prior) -> float:  # noqa: ANN001
    return float(component_divergences(prior)[1].median())


class SignalProbe(Callback):
    """Measures the prior's learning signal at chosen updates (its own random stream)."""

    def __init__(self, every: int, batches: int, out: Path, seed: int = 12345) -> None:
        self.every, self.batches, self.out, self.seed = every, batches, out, seed

    def on_start(self, run) -> None:  # noqa: ANN001
        if not self.out.exists():
            with self.out.open("w", newline="") as handle:
                csv.writer(handle).writerow(COLUMNS)

    def on_step(self, run, output) -> None:  # noqa: ANN001
        step = run.state.step
        if step != 1 and step % self.every:
            return
        model, config = run.model, run.config
        rng = torch.Generator().manual_seed(self.seed + step)
        pick = torch.randint(len(run.train_x), (self.batches, run.batch_size), generator=rng)
        was_training = model.training
        model.eval()
        with torch.enable_grad():
            rows = [phases(model, config, run.train_x[index], rng) for index in pick]
        d = torch.stack([r["g_pos"] - r["g_neg"] for r in rows])  # (K, params)
        mean_d = d.mean(0)
        spread = (d - mean_d).square().sum(1).mean() * self.batches / (self.batches - 1)
        shift = torch.stack([r["pos_mean"] - r["neg_mean"] for r in rows])  # (K, components)
        t = shift.mean(0) / (shift.std(0) / math.sqrt(self.batches)).clamp_min(1e-12)
        # One refit of a copy, on the latents the trainer would refit on.
        copied = copy.deepcopy(model)
        before = median_tv(copied.prior)
        x = run.train_x[pick[0]]
        copied.update_grids(grid_latents(copied, x, config, rng))
        after = median_tv(copied.prior)
        model.train(was_training)
        row = [
            step,
            before,
            float(torch.stack([r["g_pos"].norm() for r in rows]).mean()),
            float(torch.stack([r["g_neg"].norm() for r in rows]).mean()),
            float(d.norm(dim=1).mean()),
            float(mean_d.norm() / (spread / self.batches).sqrt()),
            float(t.square().mean().sqrt()),
            float(np.mean([r["ess"] for r in rows])),
            float(np.mean([r["distinct_positives"] for r in rows])),
            after,
        ]
        with self.out.open("a", newline="") as handle:
            csv.writer(handle).writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])


def train(args: argparse.Namespace) -> None:
    out = Path(args.out)
    overrides = [
        f"train.max_steps={args.steps}",
        f"train.threads={args.threads}",
        f"train.log_every={args.probe_every}",
        *args.set,
    ]
    config = load_config(args.config, overrides)
    torch.set_num_threads(args.threads)
    data = load_dataset(config.data)
    probe = SignalProbe(args.probe_every, args.batches, out / "signal.csv")
    fit(config, out, data, resume=args.resume, progress=False,
        callbacks=[probe, *default_callbacks()])  # fmt: skip


def _spread(z: torch.Tensor, box) -> dict:  # noqa: ANN001
    """How latents ``z (S, Q, P)`` and their generator inputs ``h (S, Q)`` spread (the mixture
    prior's latents ``(S, Q)`` are the generator inputs)."""
    h = z.sum(-1) if z.dim() == 3 else z
    eigen = torch.linalg.eigvalsh(torch.cov(h.T.double())).flip(0)
    out = {"h_eigen": [float(v) for v in eigen[:5]], "h_std": float(h.std(0).mean())}
    out["z_std"] = float(z.std())
    if box is not None:
        width = box.upper - box.lower
        near = ((z - box.lower) < 0.02 * width) | ((box.upper - z) < 0.02 * width)
        out["near_walls"] = float(near.float().mean())
    return out


def chains(args: argparse.Namespace) -> None:
    """``OUT/chains.json`` for every run: posterior chains against prior samples."""
    torch.set_num_threads(args.threads)
    for run in map(Path, args.runs):
        config, model = load_run(run)
        x = load_dataset(config.data).train[: args.images]
        rng = torch.Generator().manual_seed(0)
        settings = posterior_settings(config)
        if args.unreflected:  # a run trained before posterior.reflect existed
            settings = dataclasses.replace(settings, reflect=False)
        with torch.no_grad():
            z = posterior_samples(model, x, settings, rng)
            prior = model.prior.sample(len(x), torch.Generator().manual_seed(1))
            likelihood = model.likelihood
            error = (likelihood.mean(model.decode(z)).flatten(1) - x.flatten(1)).square().mean()
        box = model.prior.support()
        result = {"posterior": _spread(z, box), "prior": _spread(prior, box)}
        result["reconstruction_mse"] = float(error)
        (run / "chains.json").write_text(json.dumps(result, indent=1))
        print(f"{run}: h eigenvalues posterior {result['posterior']['h_eigen'][:3]}, "
              f"prior {result['prior']['h_eigen'][:3]}")  # fmt: skip


QUALITY_HEADER = [
    "| run | FID-inf | KID-inf x 1e3 | class entropy | log-lik (nats/dim) | h eigenvalues, "
    "posterior | h eigenvalues, prior | std of h: posterior / prior | near a wall | "
    "reconstruction MSE |",
    "|---|---|---|---|---|---|---|---|---|---|",
]
SIGNAL_HEADER = [
    "| run | steps | median TV | abs(g_pos) | abs(g_neg) | abs(d) | signal ratio | "
    "posterior shift | ESS | distinct positives | refit TV |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]
SECTION = "Prior learning signal (cpu)"


def _quality_rows(runs: list[Path]) -> list[str]:
    """The runs' sample figures (``tkam evaluate``) and chain spreads (``chains``)."""
    lines = []
    for run in runs:
        if not (run / "metrics.json").exists():
            continue
        m = json.loads((run / "metrics.json").read_text())
        row = (
            f"| {label(run)} | {m['fid_infinity']:.1f} | {m['kid_infinity']:.1f} | "
            f"{m['class_entropy']:.2f} | {m['log_likelihood_nats_per_dim']:.3f} |"
        )
        if (run / "chains.json").exists():
            c = json.loads((run / "chains.json").read_text())
            post, prior = c["posterior"], c["prior"]
            eig = lambda e: ", ".join(f"{v:.3g}" for v in e[:3])  # noqa: E731
            wall = f"{post['near_walls']:.3f}" if "near_walls" in post else "n/a"
            row += (
                f" {eig(post['h_eigen'])} | {eig(prior['h_eigen'])} | "
                f"{post['h_std']:.1f} / {prior['h_std']:.1f} | {wall} | "
                f"{c['reconstruction_mse']:.4f} |"
            )
        else:
            row += " | | | | |"
        lines.append(row)
    return lines


def _table_after(body: str, header: str) -> tuple[list[str], str]:
    """The rows of the table whose header line is ``header`` in ``body``, and the text after
    that table (both empty when it is not there)."""
    lines = body.splitlines()
    if header not in lines:
        return [], ""
    k = lines.index(header) + 2
    rows = []
    while k < len(lines) and lines[k].startswith("| "):
        rows.append(lines[k])
        k += 1
    return rows, "\n".join(lines[k:]).strip()


def read(run: Path) -> dict[str, np.ndarray]:
    rows = list(csv.DictReader((run / "signal.csv").open()))
    return {c: np.array([float(r[c]) for r in rows]) for c in COLUMNS}


def label(run: Path) -> str:
    settings = (run / "settings.txt").read_text().strip() if (run / "settings.txt").exists() else ""
    return settings or run.name


def report(args: argparse.Namespace) -> None:
    """Write the section from ``args.runs``; with ``args.keep`` the section's rows of other runs
    stay (their directories need not exist), the figure is not redrawn, and the text after the
    tables stays unless ``args.remark`` replaces it."""
    runs = [Path(r) for r in args.runs]
    lines = [
        f"Machine: {machine()}. Each run: `python benchmarks/prior_signal.py train OUT --steps "
        "S --set ...` (packaged `fmnist`, seed 1, 8 probe batches of 100 training images per "
        "probe, the probe's own seed), then `python benchmarks/prior_signal.py report OUT...`.",
        "",
        "Columns at the last probe (in brackets: the mean over all probes after step 1). "
        "Signal ratio: |mean d| / sqrt(trace Cov(d) / K) over K = 8 batches, about 1 for noise "
        "around zero. Posterior shift: RMS over components of the t statistic of "
        "mean(positives) - mean(negatives), about 1.18 when the positives are prior draws. "
        "Refit: median TV of a copy of the prior before -> after one grid update.",
        "",
        *SIGNAL_HEADER,
    ]
    signal_rows = []
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for run in runs:
        r = read(run)

        def both(column: str, digits: int = 3, r: dict = r) -> str:
            value, mean = r[column][-1], r[column][1:].mean()
            return f"{value:.{digits}g} ({mean:.{digits}g})"

        signal_rows.append(
            f"| {label(run)} | {int(r['step'][-1])} | {r['tv_median'][-1]:.4f} | "
            f"{both('pos_norm')} | {both('neg_norm')} | {both('diff_norm')} | "
            f"{both('signal_ratio')} | {both('posterior_shift_rms')} | {both('ess')} | "
            f"{both('distinct_positives')} | {r['tv_median'][-1]:.4f} -> "
            f"{r['refit_tv_after'][-1]:.4f} |"
        )
        for axis, column in zip(axes, ("tv_median", "signal_ratio", "posterior_shift_rms")):
            axis.plot(r["step"], r[column], marker="o", label=label(run))
            axis.set_title(column.replace("_", " "))
            axis.set_xlabel("update")
    quality_rows = _quality_rows(runs)
    remark = Path(args.remark).read_text().strip() if args.remark else ""
    if args.keep:
        old = read_section(SECTION)
        kept_signal, _ = _table_after(old, SIGNAL_HEADER[0])
        kept_quality, after = _table_after(old, QUALITY_HEADER[0])
        signal_rows = merge_table_rows(kept_signal, signal_rows)
        quality_rows = merge_table_rows(kept_quality, quality_rows)
        remark = remark or after
    else:
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        FIGURE.parent.mkdir(exist_ok=True)
        fig.savefig(FIGURE, dpi=110)
    plt.close(fig)
    lines += [*signal_rows, "", f"![prior learning signal](figures/{FIGURE.name})"]
    if quality_rows:
        lines += [
            "",
            "Samples and posterior chains at the last update (`tkam evaluate RUN --num 3000`; "
            "`python benchmarks/prior_signal.py chains RUN`: the run's own posterior chains on 200 "
            "training images against 200 prior samples; h eigenvalues: the three largest of the "
            "covariance of the generator inputs h_q = sum_p z_qp; near a wall: share of the "
            "posterior's components within 2% of the support's width of a wall):",
            "",
            *QUALITY_HEADER,
            *quality_rows,
        ]
    if remark:
        lines += ["", remark]
    write_section(SECTION, "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a run with the probe")
    t.add_argument("out")
    t.add_argument("--config", default="fmnist")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--probe-every", type=int, default=200)
    t.add_argument("--batches", type=int, default=8)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--resume", action="store_true")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    c = sub.add_parser("chains", help="posterior chains of trained runs against prior samples")
    c.add_argument("runs", nargs="+")
    c.add_argument("--images", type=int, default=200)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument(
        "--unreflected", action="store_true", help="chains that may leave the prior's support"
    )
    r = sub.add_parser("report", help="tabulate runs into RESULTS.md")
    r.add_argument("runs", nargs="+")
    r.add_argument("--remark", help="a file whose text follows the table")
    r.add_argument(
        "--keep",
        action="store_true",
        help="keep the section's rows of other runs (and its text, unless --remark); no figure",
    )
    args = parser.parse_args()
    if args.command == "train":
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "settings.txt").write_text(" ".join(args.set) or "packaged fmnist")
        train(args)
    elif args.command == "chains":
        chains(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
