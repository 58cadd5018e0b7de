"""What the T-KAM prior learns on Fashion-MNIST at the reference's budget (5,000 updates).

Runs (ordinary ``tkam train`` folders, trained and scored by ``side_by_side.py``'s machinery,
figures kept in the same store ``benchmarks/side_by_side.json`` under ``prior/...``):

* the reference's eight logged settings: reference densities uniform, gaussian, lognormal and
  ebm, RBF (G = 20) and FFT (G = 50) bases, importance sampling (``ebm`` with RBF is the packaged
  ``fmnist`` and is the side-by-side table's ``tkam-is`` row);
* ``prior.independent_uniforms = true`` against the shared-uniform default, three seeds;
* ``prior.learning_rate = 1e-2`` (ten times the generator's) against the default, three seeds;
* the side-by-side table's Langevin (ULA, autoMALA), thermodynamic and mixture rows.

For each run: how far the components moved from pi_0 (``tkam inspect``: median and 90th
percentile of the total variation, the share above 0.1, the effective dimension of the generator
input h), its FID-inf and test log-likelihood, and the ``Prior TV`` column of its ``loss.csv`` over
training. ``components`` draws components (1,1), (1,2), (1,3) of each of the eight settings beside
the reference's committed figures, in the reference's layout and in its convention (the y axis
starting at the smaller of the two curves' minima, no ticks) and says how far each of ours is from
pi_0 on a true scale.

    python benchmarks/prior_study.py train [--rows ...] [--seeds 1] [--jobs 1] --runs DIR
    python benchmarks/prior_study.py inspect          # add the inspection figures to the store
    python benchmarks/prior_study.py components --reference PATH/TO/KAEM
    python benchmarks/prior_study.py report [--remark FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import side_by_side as sbs  # noqa: E402
from common import write_section  # noqa: E402
from reference_runs import REFERENCES, overrides  # noqa: E402

STEPS = 5000
REFERENCE_FIGURES = "figures/results/priors/FMNIST/{run}_1_{p}.png"
COMPONENTS_FIGURE = sbs.FIGURES / "prior_components_fmnist.png"
CURVES_FIGURE = sbs.FIGURES / "prior_tv_curves_fmnist.png"
LEARNING_RATE_FIGURE = sbs.FIGURES / "prior_learning_rate_fmnist.png"
INSPECTED = ("tv_median", "tv_p90", "share_tv_above_0.1", "kl_median", "h_effective_dimension",
             "h_leading_share")  # fmt: skip


def _setting(run: str) -> list[str]:
    """The reference setting's prior and generator keys (its seed and logging are the study's)."""
    return [value for value in overrides(run) if not value.startswith("train.")]


SETTINGS = [f"{pi0}_{basis}" for pi0 in REFERENCES for basis in ("RBF", "FFT")]
PRIOR = {
    **{
        f"ref-{run}": sbs.Row(f"{run.replace('_', ' ')}, importance sampling", _setting(run))
        for run in SETTINGS
        if run != "ebm_RBF"  # the packaged fmnist: the shared table's tkam-is row
    },
    "tkam-independent": sbs.Row(
        "ebm RBF, importance sampling, independent uniforms", ["prior.independent_uniforms=true"]
    ),
    "tkam-prior-lr": sbs.Row(
        "ebm RBF, importance sampling, prior learning rate 1e-2", ["prior.learning_rate=1e-2"]
    ),
}
sbs.ROWS.update(PRIOR)

# The study's rows: (store key prefix, label). The packaged setting comes from the shared table.
STUDY = [
    ("shared/tkam-is", "ebm RBF, importance sampling (packaged fmnist)"),
    *[(f"prior/ref-{run}", PRIOR[f"ref-{run}"].label) for run in SETTINGS if run != "ebm_RBF"],
    ("shared/tkam-ula", "ebm RBF, Langevin (ULA)"),
    ("shared/tkam-automala", "ebm RBF, Langevin (autoMALA)"),
    ("shared/tkam-ula-noise-sigma0.5", "ebm RBF, Langevin (ULA) on the noise, sigma 0.5"),
    ("shared/tkam-automala-noise-sigma0.5", "ebm RBF, Langevin (autoMALA) on the noise, sigma 0.5"),
    ("shared/tkam-is-sigma0.3", "ebm RBF, importance sampling, sigma 0.3"),
    ("shared/tkam-thermo", "ebm RBF, thermodynamic integration"),
    ("shared/tkam-mixture", "mixture prior, gaussian reference, importance sampling"),
    ("prior/tkam-independent", PRIOR["tkam-independent"].label),
    ("prior/tkam-prior-lr", PRIOR["tkam-prior-lr"].label),
]


def entries_of(prefix: str, entries: dict | None = None) -> list[tuple[str, dict]]:
    entries = sbs.store() if entries is None else entries
    return sorted((k, e) for k, e in entries.items() if k.startswith(f"{prefix}/{STEPS}/"))


def inspect_all() -> None:
    """Add ``tkam inspect --json`` figures to every study entry that lacks them."""
    for prefix, _ in STUDY:
        for key, entry in entries_of(prefix):
            if all(k in entry for k in INSPECTED):
                continue
            run = Path(entry["run"])
            result = subprocess.run(
                [sys.executable, "-m", "tkam.cli", "inspect", str(run), "--json"],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                print(f"{key}: inspect failed: {result.stderr.strip()[-300:]}")
                continue
            figures = json.loads(result.stdout)
            entries = sbs.store()  # re-read: a training of the study may have written meanwhile
            entries[key].update({k: figures.get(k) for k in INSPECTED})
            sbs.save(entries)
            print(f"{key}: median TV {figures['tv_median']:.4f}")


def tv_curve(run: Path) -> tuple[np.ndarray, np.ndarray]:
    with (run / "loss.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("Prior TV")]
    return (
        np.array([int(r["Step"]) for r in rows]),
        np.array([float(r["Prior TV"]) for r in rows]),
    )


def curves() -> Path:
    fig, ax = plt.subplots(figsize=(9, 5))
    for prefix, label in STUDY:
        found = entries_of(prefix)
        if found and Path(found[0][1]["run"]).exists():
            steps, tv = tv_curve(Path(found[0][1]["run"]))
            ax.plot(steps, tv, label=label, lw=1.4)
    ax.set_xlabel("update")
    ax.set_ylabel("median total variation from pi_0 over components")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title("How far the prior's components move from pi_0 (seed 1)")
    fig.tight_layout()
    fig.savefig(CURVES_FIGURE, dpi=100)
    plt.close(fig)
    return CURVES_FIGURE


def table() -> list[str]:
    lines = [
        "| setting | seeds | median TV | 90th pct TV | share TV > 0.1 | h eff. dim (leading share) |"
        " FID-inf | test log-lik. (nats/dim) | class entropy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for prefix, label in STUDY:
        found = [e for _, e in entries_of(prefix)]
        if not found:
            continue
        dims = [e.get("h_effective_dimension") for e in found]
        share = [e.get("h_leading_share") for e in found]
        lines.append(
            f"| {label} | {len(found)} | {sbs._spread([e.get('tv_median') for e in found], '.4f')} |"
            f" {sbs._spread([e.get('tv_p90') for e in found], '.4f')} |"
            f" {sbs._spread([e.get('share_tv_above_0.1') for e in found], '.3f')} |"
            f" {sbs._spread(dims, '.0f')} ({sbs._spread(share, '.4f')}) |"
            f" {sbs._spread([e['fid_infinity'] for e in found], '.1f')} |"
            f" {sbs._spread([e['log_likelihood_nats_per_dim'] for e in found], '.3f')} |"
            f" {sbs._spread([e['class_entropy'] for e in found], '.2f')} |"
        )
    return lines


# ------------------------------------------------------------------------------------------------
# Components beside the reference's figures


def _components(run: Path) -> dict:
    from tkam.runs import load_run

    _, model = load_run(run)
    return model.prior.export()


def _softmax(values: np.ndarray) -> np.ndarray:
    e = np.exp(values - values.max())
    return e / e.sum()


def _reference_convention(ax, nodes, unnormalised, reference, colour) -> None:  # noqa: ANN001
    """Draw as the reference's plot_prior.jl does: a softmax over the nodes of the unnormalised
    component ``e^f pi_0`` and of ``pi_0``, each filled from 0, the y axis from the smaller of
    the two minima up (Makie's default margin above), no ticks or spines."""
    f, pi0 = _softmax(unnormalised), _softmax(reference)
    ax.fill_between(nodes, 0, f, color=colour, alpha=0.3)
    ax.plot(nodes, f, color=colour)
    ax.fill_between(nodes, 0, pi0, color="grey", alpha=0.2)
    ax.plot(nodes, pi0, color="grey", alpha=0.8)
    top = max(f.max(), pi0.max())
    bottom = min(f.min(), pi0.min())
    ax.set_ylim(bottom, top + 0.05 * (top - bottom))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def components(reference: Path) -> Path:
    entries = sbs.store()
    colours = ("red", "blue", "green")
    fig, axes = plt.subplots(len(SETTINGS), 6, figsize=(18, 3.0 * len(SETTINGS)))
    for row, run_name in enumerate(SETTINGS):
        prefix = "shared/tkam-is" if run_name == "ebm_RBF" else f"prior/ref-{run_name}"
        key = f"{prefix}/{STEPS}/seed1"
        exported = _components(Path(entries[key]["run"])) if key in entries else None
        for p in range(3):
            ax = axes[row, p]
            ax.axis("off")
            path = reference / REFERENCE_FIGURES.format(run=run_name, p=p + 1)
            if path.exists():
                ax.imshow(plt.imread(path))
            ax.set_title(f"reference {run_name} (1,{p + 1})", fontsize=8)
            ax = axes[row, 3 + p]
            if exported is None:
                ax.axis("off")
                continue
            nodes = exported["nodes"][p]
            density, pi0 = exported["density"][0, p], exported["reference"][p]
            unnormalised = density * np.exp(exported["log_normaliser"][0, p])
            _reference_convention(ax, nodes, unnormalised, pi0, colours[p])
            # Both normalised on the nodes (the export's pi_0 of the ebm reference is
            # unnormalised): the true ratio of the component to pi_0.
            f = density / np.trapezoid(density, nodes)
            reference_density = pi0 / np.trapezoid(pi0, nodes)
            ratio = f / np.where(reference_density > 0, reference_density, np.nan)
            lo, hi = np.nanmin(ratio), np.nanmax(ratio)
            ax.set_title(
                f"tkam {run_name} (1,{p + 1}): p / pi_0 in [{lo:.2f}, {hi:.2f}]", fontsize=8
            )
    title = (
        "Components (1,1), (1,2), (1,3) after 5,000 updates: the reference's committed figures"
        " (left three) and tkam's (right three) drawn in the reference's convention (softmax"
        " over the nodes, y axis from the smaller minimum, no ticks); the titles give tkam's"
        " true range of p / pi_0"
    )
    return _finish(fig, title, COMPONENTS_FIGURE, dpi=60, top=0.98)


def _finish(fig, title: str, path: Path, dpi: int, top: float) -> Path:  # noqa: ANN001
    """Title, lay out, write and close a figure; its path."""
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def learning_rate_figure() -> Path | None:
    """Components (q, 1), q = 1..3, of the seed-1 runs at the default prior learning rate and at
    ten times it, on a true scale: the normalised component and pi_0 over the nodes."""
    entries = sbs.store()
    runs = [
        ("shared/tkam-is", "prior learning rate 1e-3 (default)"),
        ("prior/tkam-prior-lr", "prior learning rate 1e-2"),
    ]
    keys = [f"{prefix}/{STEPS}/seed1" for prefix, _ in runs]
    if not all(k in entries and Path(entries[k]["run"]).exists() for k in keys):
        return None
    fig, axes = plt.subplots(len(runs), 3, figsize=(12, 3.2 * len(runs)), sharey=True)
    for row, ((_, label), key) in enumerate(zip(runs, keys, strict=True)):
        exported = _components(Path(entries[key]["run"]))
        tv = entries[key].get("tv_median")
        for q in range(3):
            ax = axes[row, q]
            nodes = exported["nodes"][0]
            density = exported["density"][q, 0]
            pi0 = exported["reference"][0]
            ax.plot(nodes, density / np.trapezoid(density, nodes), lw=1.6, label="p_q1")
            ax.plot(nodes, pi0 / np.trapezoid(pi0, nodes), "k--", lw=1.0, label="pi_0")
            ax.set_title(f"{label}: component ({q + 1},1)", fontsize=9)
            ax.set_xlabel("z")
            if q == 0:
                ax.set_ylabel(f"density (median TV of the run {tv:.3f})", fontsize=8)
                ax.legend(fontsize=7)
    title = (
        "Fashion-MNIST, importance sampling, 5,000 updates, seed 1: components (1,1)-(3,1)\n"
        "packaged prior (top) and prior learning rate ten times the generator's (bottom), one scale"
    )
    return _finish(fig, title, LEARNING_RATE_FIGURE, dpi=70, top=0.93)


def seeds_table(heading: str, rows: list[tuple[str, str]]) -> list[str]:
    """Mean ± std over seeds of each (store prefix, label) row."""
    lines = [
        f"| {heading} | seeds | FID-inf | test log-lik. (nats/dim) | median TV | h eff. dim |",
        "|---|---|---|---|---|---|",
    ]
    for prefix, label in rows:
        found = [e for _, e in entries_of(prefix)]
        if found:
            lines.append(
                f"| {label} | {len(found)} | {sbs._spread([e['fid_infinity'] for e in found], '.1f')}"
                f" | {sbs._spread([e['log_likelihood_nats_per_dim'] for e in found], '.3f')} |"
                f" {sbs._spread([e.get('tv_median') for e in found], '.4f')} |"
                f" {sbs._spread([e.get('h_effective_dimension') for e in found], '.1f')} |"
            )
    return lines


def report(remark: str | None) -> None:
    body = [
        "Fashion-MNIST, 5,000 updates at batch 100 on all 60,000 training images, seed 1 unless"
        " the seeds column says otherwise; every run an ordinary `tkam train` folder (figures in"
        " `benchmarks/side_by_side.json`). Commands: `python benchmarks/prior_study.py train"
        " --runs DIR` (the side-by-side table's runs serve for the packaged setting and the"
        " Langevin, thermodynamic and mixture rows), `... inspect`, `... components --reference"
        " KAEM-CHECKOUT`, `... report`. TV: total variation of each component from pi_0 by the"
        " prior's quadrature (`tkam inspect`); h eff. dim: principal directions holding 99% of"
        " the variance of the generator input h over 2,000 prior samples. FID-inf against"
        " training images (3,000 samples), log-likelihood on 1,000 test images (K = 1,000).",
        "",
        *table(),
        "",
        f"Median TV over training (`Prior TV` of loss.csv): `{CURVES_FIGURE.relative_to(sbs.HERE.parent)}`.",
        "",
        "Independent against shared uniforms (importance sampling, packaged `fmnist`):",
        "",
        *seeds_table(
            "uniforms",
            [("shared/tkam-is", "shared (default)"), ("prior/tkam-independent", "independent")],
        ),
        "",
        "The prior's learning rate (importance sampling, packaged `fmnist`; the default trains the"
        " prior at the generator's rate, 1e-3):",
        "",
        *seeds_table(
            "prior learning rate",
            [("shared/tkam-is", "1e-3 (default)"), ("prior/tkam-prior-lr", "1e-2")],
        ),
    ]
    figure = learning_rate_figure()
    if figure is not None:
        body += [
            "",
            f"Components of both (seed 1, true scale): `{figure.relative_to(sbs.HERE.parent)}`.",
        ]
    if COMPONENTS_FIGURE.exists():
        body += [
            "",
            "Components beside the reference's figures:"
            f" `{COMPONENTS_FIGURE.relative_to(sbs.HERE.parent)}`.",
        ]
    if remark:
        body += ["", Path(remark).read_text().strip()]
    write_section("What the prior learns: the study (cpu)", "\n".join(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("train", "inspect", "components", "report"))
    parser.add_argument("--rows", nargs="+", help="rows of the study to train (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--runs", default="runs/side")
    parser.add_argument("--reference", help="a checkout of github thezettascale/KAEM")
    parser.add_argument("--remark", help="a file whose text follows the tables")
    args = parser.parse_args()
    if args.command == "train":
        rows = args.rows or list(PRIOR)
        sbs.run_jobs(sbs.table_jobs("prior", rows, args.seeds, Path(args.runs), STEPS), args.jobs)
    elif args.command == "inspect":
        inspect_all()
    elif args.command == "components":
        if not args.reference:
            parser.error("components needs --reference PATH (a checkout of the reference)")
        print(components(Path(args.reference)))
    else:
        curves()
        report(args.remark)


if __name__ == "__main__":
    main()
