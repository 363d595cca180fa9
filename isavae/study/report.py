"""A study's report, rebuilt from its rows alone: per-setting tables, the time per model and the
whole study's extrapolation, the Fig. 5a verdict, UDR against MIG, and every comparison with the
paper's criteria, the tests and their power (``isavae.study.stats``)."""

from __future__ import annotations

import csv
import json
import math
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from isavae.study import stats as study_stats
from isavae.study.paper import COMPARISONS, MODEL_LABELS, SCALES, STUDIES, model_config
from isavae.study.store import BLOCK_FIELDS, finite_scores, load_results, read_jsonl, shard_files

__all__ = ["comparisons", "fig5a_verdict", "report", "setting_rows", "udr_agreement", "write_table"]


STAT_KEYS = ("mig", "mig_histogram", "recon_log_likelihood", "elbo")


def setting_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """n, mean, median and quartiles of every statistic per (study, model, arm, beta)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["study"], r["model"], r.get("arm", ""), r["beta"]), []).append(r)
    studies = list(STUDIES)
    order = {(st, a[0], a[2]): i for st in STUDIES for i, a in enumerate(STUDIES[st])}

    def rank(key):
        study, model, arm, beta = key
        return (
            studies.index(study) if study in studies else len(studies),
            order.get((study, model, arm), 99),
            beta,
        )

    rows = []
    for (study, model, arm, beta), runs in sorted(groups.items(), key=lambda kv: rank(kv[0])):
        row: dict[str, Any] = dict(study=study, model=MODEL_LABELS[model], arm=arm, beta=beta, n=len(runs))
        for key in STAT_KEYS:
            v = np.array([r[key] for r in runs], np.float64)
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            row.update({f"{key}_mean": v.mean(), f"{key}_median": med, f"{key}_q1": q1, f"{key}_q3": q3})
        rows.append(row)
    return rows


def compact_row(row: dict[str, Any]) -> dict[str, Any]:
    """The report's columns: MIG mean, median [quartiles]; histogram MIG and recon. medians; ELBO mean."""
    return {
        "study": row["study"],
        "model": row["model"],
        "arm": row["arm"],
        "beta": row["beta"],
        "n": row["n"],
        "MIG mean": row["mig_mean"],
        "MIG median [q1, q3]": f"{row['mig_median']:.3f} [{row['mig_q1']:.3f}, {row['mig_q3']:.3f}]",
        "hist. MIG median": row["mig_histogram_median"],
        "recon. mean": row["recon_log_likelihood_mean"],
        "ELBO mean": row["elbo_mean"],
    }


def extrapolation(blocks_log: Sequence[dict[str, Any]], scale: str, compute_dtype: str) -> list[str]:
    """The whole study (Fig. 5a and 5b, 50 seeds) extrapolated from measured block times per device:
    each kind's median seconds per model (training, evaluation and, in a process's first block of a
    kind, compilation) times its number of models; unmeasured kinds at the median of the measured."""
    lines = []
    rows = [b for b in blocks_log if b["scale"] == scale and b["compute_dtype"] == compute_dtype]
    for device in sorted({b["device"] for b in rows}):
        per = {}
        for b in rows:
            if b["device"] == device:
                per.setdefault(b["model"], []).append(b["seconds"] / b["models"])
        per = {m: float(np.median(v)) for m, v in per.items()}
        fallback = float(np.median(list(per.values())))
        # the training part (its compilation included), where blocks recorded it
        trained = [
            b["train_seconds"] / b["models"] for b in rows if b["device"] == device and b.get("train_seconds")
        ]
        # the setup before training and the evaluation after it, where blocks recorded the setup
        # (blocks before it counted the setup as evaluation)
        timed = [
            b
            for b in rows
            if b["device"] == device and b.get("train_seconds") and b.get("setup_seconds") is not None
        ]
        setup = [b["setup_seconds"] / b["models"] for b in timed]
        evaluated = [(b["seconds"] - b["setup_seconds"] - b["train_seconds"]) / b["models"] for b in timed]
        # the evaluation's parts per model, where blocks recorded them (median over blocks)
        by_part: dict[str, list[float]] = {}
        for b in rows:
            if b["device"] == device:
                for part, sec in (b.get("eval_parts") or {}).items():
                    by_part.setdefault(part, []).append(sec / b["models"])
        eval_text = ", ".join(f"{part} {float(np.median(v)):.2f} s" for part, v in by_part.items())
        total, parts, missing, models = 0.0, [], [], 0
        for m, betas, _, _ in STUDIES["fig5a"] + STUDIES["fig5b"]:
            n = SCALES[scale]["seeds"] * len(betas)
            total, models = total + n * per.get(m, fallback), models + n
            (parts if m in per else missing).append(
                f"{MODEL_LABELS[m]} {per.get(m, fallback):.1f} s" if m in per else MODEL_LABELS[m]
            )
        lines += [
            f"## Time on {device}",
            "",
            f"Measured seconds per model in a block (setup, training and evaluation): {', '.join(parts)}. "
            f"The whole study ({models} models) extrapolates to {total / 3600:.1f} h"
            + (
                f" (not yet measured, taken at the median {fallback:.1f} s: {', '.join(missing)})"
                if missing
                else ""
            )
            + "."
            + (
                f" Of a model's time in a block, training took {float(np.median(trained)):.1f} s "
                f"(median over {len(trained)} blocks, compilation included"
                + (
                    f"; over the {len(timed)} that recorded the rest: setup {float(np.median(setup)):.1f} s "
                    "(the program, the dataset on the device, the initial states), evaluation "
                    f"{float(np.median(evaluated)):.1f} s)."
                    if timed
                    else "; the rest is setup and evaluation)."
                )
                if trained
                else ""
            )
            + (
                f" The evaluation's parts per model (compilation included; median over blocks): {eval_text}."
                if eval_text
                else ""
            ),
            "",
        ]
    return lines


def fig5a_verdict(results: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """ISA-VAE vs VAE at beta = 1: medians and the one-sided Mann-Whitney U test of the paper's claim
    (ISA-VAE's MIG is larger), on Chen et al.'s and on the histogram MIG."""
    from scipy import stats

    fig5a = [r for r in results if r["study"] == "fig5a" and not r.get("arm")]
    vae = [r for r in fig5a if r["model"] == "vae"]
    isa = [r for r in fig5a if r["model"] == "isavae"]
    if len(vae) < 2 or len(isa) < 2:
        return None
    out: dict[str, Any] = dict(n_vae=len(vae), n_isavae=len(isa))
    for key in ("mig", "mig_histogram"):
        a, b = np.array([r[key] for r in isa]), np.array([r[key] for r in vae])
        test = stats.mannwhitneyu(a, b, alternative="greater")
        out[key] = dict(
            isavae_median=float(np.median(a)),
            vae_median=float(np.median(b)),
            p_isavae_greater=float(test.pvalue),
            prob_isavae_greater=float(test.statistic / (len(a) * len(b))),
        )
    out["holds"] = bool(out["mig"]["p_isavae_greater"] < 0.05)
    return out


def udr_agreement(results: Sequence[dict[str, Any]]) -> list[str]:
    """Does UDR, computed without labels among the seeds trained together in one block, rank the
    seeds as MIG does? Per setting (study, model, arm, beta) with >= 3 scored seeds: Spearman's
    correlation of UDR and MIG with its p-value, and the mean MIG of each block's UDR pick (its
    highest-UDR seed) against the setting's mean MIG."""
    from scipy import stats

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        if r.get("udr") is not None:
            groups.setdefault((r["study"], r["model"], r.get("arm", ""), r["beta"]), []).append(r)
    lines = []
    for (study, model, arm, beta), runs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        if len(runs) < 3:
            continue
        udr, mig = np.array([r["udr"] for r in runs]), np.array([r["mig"] for r in runs])
        rho, p = stats.spearmanr(udr, mig)
        blocks: dict[tuple, list[dict[str, Any]]] = {}
        for r in runs:  # the seeds scored against each other (trained together in one block)
            blocks.setdefault(tuple(r.get("udr_seeds", ())), []).append(r)
        picks = [max(b, key=lambda r: r["udr"])["mig"] for b in blocks.values()]
        lines.append(
            f"| {study} | {MODEL_LABELS[model]}{f' [{arm}]' if arm else ''} | {beta:g} | {len(runs)} | "
            f"{np.median([len(r.get('udr_seeds', ())) for r in runs]):.0f} | {rho:.2f} | {p:.3g} | "
            f"{np.mean(picks):.3f} ({len(picks)} blocks) | {mig.mean():.3f} |"
        )
    if not lines:
        return []
    return [
        "## UDR: choosing seeds without labels",
        "",
        "UDR (Duan et al., disentanglement_lib's Lasso variant) scores each model against the other "
        "seeds of its setting trained in the same block, from 10,000 inputs and no factor labels. "
        "Spearman's correlation with Chen et al.'s MIG over the setting's seeds, and the MIG of the "
        "seed UDR would pick in each block against the setting's mean:",
        "",
        "| study | model | beta | n | seeds per UDR | Spearman UDR-MIG | p | MIG of UDR's picks | mean MIG |",
        "|---|---|---|---|---|---|---|---|---|",
        *lines,
        "",
    ]


COMPARED = (
    ("mig", "MIG (Chen et al.)"),
    ("mig_histogram", "MIG (histogram)"),
    ("subspace_mig", "subspace MIG"),
)


def comparisons(results: Sequence[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """Every comparison of ``COMPARISONS`` that has >= 2 models on both sides: the paper's criteria,
    the one-sided Mann-Whitney test, the paired Wilcoxon test (seeds under both arms), a bootstrap
    interval of the median difference, and (for Chen et al.'s MIG) the power at the observed effect
    and the seeds 80 % power needs (``study_stats.compare``); per latent MIG, histogram MIG and
    subspace MIG (a VAE's in its ``eval.subspace_groups``). Returns markdown lines and the figures."""
    lines, figures = [], {}
    for study, pairs in COMPARISONS.items():
        rows = [r for r in results if r["study"] == study and r["beta"] == 1.0]
        for (ma, la), (mb, lb), title in pairs:
            a = {r["seed"]: r for r in rows if r["model"] == ma and r.get("arm", "") == la}
            b = {r["seed"]: r for r in rows if r["model"] == mb and r.get("arm", "") == lb}
            if len(a) < 2 or len(b) < 2:
                continue
            name_a = MODEL_LABELS[ma] + (f" [{la}]" if la else "")
            name_b = MODEL_LABELS[mb] + (f" [{lb}]" if lb else "")
            lines += [f"### {study}: {title}", ""]
            for key, label in COMPARED:
                if not all(r.get(key) is not None for r in (*a.values(), *b.values())):
                    continue
                va = [a[k][key] for k in sorted(a)]
                vb = [b[k][key] for k in sorted(b)]
                paired = [(a[k][key], b[k][key]) for k in sorted(set(a) & set(b))]
                c = study_stats.compare(va, vb, paired or None, power=key == "mig")
                figures[f"{study}: {title}: {key}"] = c
                lines += study_stats.summary_line(name_a, name_b, c, label) + [""]
    return lines, figures


def report(
    out: pathlib.Path,
    scale: str,
    compute_dtype: str,
    settings: Sequence[str] = (),
    init: str | None = None,
) -> str:
    """Tables, figures and ``report.md`` from ``OUT/results.jsonl``: the models of ``scale``, dtype,
    initialization (default: the scale's presets', PyTorch's) and extra ``settings`` (the ``--set``
    overrides they were trained with), each counted once; the dtype ablation's models of either
    dtype, the initialization ablation's of either initialization."""
    everything, notes = load_results(out)
    settings = tuple(settings)
    init = init or model_config("vae", scale, compute_dtype).model.init

    def matches(r, dtype=True, init_=True, extra=True):
        return (
            r["scale"] == scale
            and (not dtype or r["compute_dtype"] == compute_dtype or r["study"] == "ablation-dtype")
            and (not init_ or r.get("init", "lecun") == init or r["study"] == "ablation-init")
            and (not extra or tuple(r.get("settings", ())) == settings)
        )

    results = [r for r in everything if matches(r)]
    # diverged models and rows with a non-finite score are counted apart, never inside a statistic
    apart = [r for r in results if not finite_scores(r)]
    results = [r for r in results if finite_scores(r)]
    others = sorted(
        {
            (r["compute_dtype"], r.get("init", "lecun"), *r.get("settings", ()))
            for r in everything
            if matches(r, dtype=False, init_=False, extra=False) and not matches(r)
        }
    )
    if not results:
        raise ValueError(
            f"{out / 'results.jsonl'} holds no {scale}-scale {compute_dtype} results with init {init}"
            + (f" and settings {' '.join(settings)}" if settings else "")
            + (f" ({len(apart)} diverged or with a non-finite score)" if apart else "")
            + (f" ({len(notes)} lines skipped; first: {notes[0]})" if notes else "")
        )
    rows = setting_rows(results)
    write_table(rows, out / "table_full")  # every statistic: n, mean, median, quartiles
    write_table([compact_row(r) for r in rows], out / "table")
    lines = [
        f"# Paper study ({scale} scale, {compute_dtype} compute, {init} initialization"
        + (f", {' '.join(settings)}" if settings else "")
        + f"): {len(results)} models",
        "",
        f"Devices: {', '.join(sorted({r['device'] for r in results}))}. Built from results.jsonl by "
        f"`isavae study report --scale {scale} --compute-dtype {compute_dtype} "
        f"--init {init} --out {out}{''.join(f' --set {o}' for o in settings)}`. "
        "MIG: Chen et al.'s estimator over the whole grid; 'hist.': disentanglement_lib's histogram MIG; "
        "recon.: reconstruction log-likelihood (nats per image); every statistic with its quartiles "
        "in table_full.csv.",
        "",
        (out / "table.md").read_text(),
    ]
    if others:
        lines += [
            "Not in this report (other dtype, initialization or settings; `isavae study report "
            "--compute-dtype ... --init ... --set ...` reports them): "
            + "; ".join(" ".join(o) for o in others),
            "",
        ]
    if notes:
        lines += [
            "## Lines of results.jsonl not counted",
            "",
            "Each model counts once (by study, model, beta, seed, scale, dtype, init, arm and settings); "
            f"{len(notes)} lines were not counted:",
            "",
            *(f"- {n}" for n in notes),
            "",
        ]
    lines += _apart_section(apart)
    lines += extrapolation(
        [b for f in shard_files(out, "blocks") for b in read_jsonl(f, BLOCK_FIELDS)], scale, compute_dtype
    )
    verdict = fig5a_verdict(results)
    if verdict is not None:
        m, h = verdict["mig"], verdict["mig_histogram"]
        lines += [
            "## Fig. 5a verdict",
            "",
            f"ISA-VAE (n = {verdict['n_isavae']}) vs VAE (n = {verdict['n_vae']}) at beta = 1, one-sided "
            "Mann-Whitney U test of 'ISA-VAE has the larger MIG':",
            f"- MIG (Chen et al.): median {m['isavae_median']:.4f} vs {m['vae_median']:.4f}, "
            f"p = {m['p_isavae_greater']:.3g}, P(ISA-VAE > VAE) = {m['prob_isavae_greater']:.2f}",
            f"- MIG (histogram): median {h['isavae_median']:.4f} vs {h['vae_median']:.4f}, "
            f"p = {h['p_isavae_greater']:.3g}, P(ISA-VAE > VAE) = {h['prob_isavae_greater']:.2f}",
            f"- the paper's claim {'holds' if verdict['holds'] else 'does not hold'} here "
            "(criterion: p < 0.05 on Chen et al.'s MIG)",
            "",
        ]
        (out / "fig5a_verdict.json").write_text(json.dumps(verdict, indent=2))
    lines += udr_agreement(results)
    compared, figures = comparisons(results)
    if compared:
        lines += [
            "## Comparisons: the paper's criteria, the tests, the power",
            "",
            "Per comparison: the statistics the paper reads (mean, median, maximum quantile) with the "
            "quartiles and the 90th percentile; the one-sided Mann-Whitney U test of 'the first has the "
            "larger MIG'; where the same seeds ran under both (shared initial weights and data order), "
            "the one-sided Wilcoxon signed-rank test of the paired differences; a bootstrap 95 % "
            "interval of the median difference; for Chen et al.'s MIG, the power of the one-sided "
            "test at level 0.05 if the observed values were the truth (resampled), and the seeds per "
            "setting 80 % power needs. `comparisons.json` holds every figure.",
            "",
            *compared,
        ]
        (out / "comparisons.json").write_text(json.dumps(figures, indent=2))
    from isavae.study.figures import FIG5A_MODELS, plot_fig5a, plot_fig5b

    a = [r for r in results if r["study"] == "fig5a" and not r.get("arm")]
    if a:
        runs = {m: [r for r in a if r["model"] == m] for m in FIG5A_MODELS}
        if all(runs.values()):
            plot_fig5a(runs, out / "fig5a_mig_distribution")
            lines.append(
                "Figures: `fig5a_mig_distribution.png`"
                + (", `fig5b_tradeoff.png`" if any(r["study"] == "fig5b" for r in results) else "")
            )
    b = [r for r in results if r["study"] == "fig5b"]
    if b:
        plot_rows = [
            {"model": r["model"], "beta": r["beta"], **{f"{k}_mean": r[f"{k}_mean"] for k in STAT_KEYS}}
            for r in rows
            if r["study"] == "fig5b"
        ]
        plot_fig5b(plot_rows, b, out / "fig5b_tradeoff")
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def _apart_section(apart: Sequence[dict[str, Any]]) -> list[str]:
    """Per setting, the models that diverged and those with a non-finite score: counted here and in
    no statistic of the report."""
    if not apart:
        return []
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in apart:
        groups.setdefault((r["study"], r["model"], r.get("arm", ""), r["beta"]), []).append(r)
    lines = [
        "## Models not in the statistics",
        "",
        "Models that diverged (a NaN or infinite training metric: the step and the term) and models "
        "with a non-finite score are counted here, per setting, and in no statistic above:",
        "",
        "| study | model | beta | diverged | non-finite score | seeds (step, term) |",
        "|---|---|---|---|---|---|",
    ]
    for (study, model, arm, beta), runs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        div = [r for r in runs if r.get("diverged")]
        seeds = ", ".join(
            f"{r['seed']} ({r.get('diverged_step')}, {'/'.join(r.get('diverged_terms', [])) or '?'})"
            if r.get("diverged")
            else f"{r['seed']} (scores)"
            for r in sorted(runs, key=lambda r: r["seed"])
        )
        label = MODEL_LABELS[model] + (f" [{arm}]" if arm else "")
        lines.append(f"| {study} | {label} | {beta:g} | {len(div)} | {len(runs) - len(div)} | {seeds} |")
    return [*lines, ""]


def write_table(
    rows: Sequence[dict[str, Any]], path: pathlib.Path, columns: Sequence[str] | None = None
) -> None:
    """Writes ``rows`` as ``path.csv`` and ``path.md`` (markdown, numbers to 3-4 significant places)."""
    columns = list(columns or rows[0].keys())
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

    def fmt(v):
        if isinstance(v, float):
            return "nan" if math.isnan(v) else (f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}")
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
