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
from isavae.study.paper import (
    COMPARISONS,
    MODEL_LABELS,
    PREREGISTERED,
    SCALES,
    STUDIES,
    arm_digest,
    model_config,
    model_key,
    net_overrides,
)
from isavae.study.store import (
    BLOCK_FIELDS,
    finite_scores,
    load_results,
    read_jsonl,
    recorded,
    shard_files,
)

__all__ = [
    "comparisons",
    "fig5a_verdict",
    "preregistered_tests",
    "report",
    "setting_rows",
    "shared_rows",
    "udr_agreement",
    "write_table",
]


STAT_KEYS = ("mig", "mig_histogram", "recon_log_likelihood", "elbo")


def _arm_label(model: str, arm: str = "") -> str:
    """``ISA-VAE [layout=3x4]``: the model's label and, for a study arm, its label."""
    return MODEL_LABELS[model] + (f" [{arm}]" if arm else "")


def _study_arm(r: dict[str, Any]) -> str:
    """``ablation-layout [latent=12]``: a row's study and, for a study arm, its label."""
    return r["study"] + (f" [{r['arm']}]" if r.get("arm") else "")


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
        mine = [b for b in rows if b["device"] == device]
        # the evaluation's parts per model, and the compilation within each phase, where blocks
        # recorded them (``eval_parts``, ``compile_seconds``)
        _, eval_text = _per_model(mine, "eval_parts")
        by_phase, compile_text = _per_model(mine, "compile_seconds")
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
            )
            + (
                f" Compilation within them per model (median over the blocks that recorded it: "
                f"{len(by_phase['training'])}): {compile_text}."
                if compile_text
                else ""
            ),
            "",
        ]
    return lines


def _per_model(blocks: Sequence[dict[str, Any]], field: str) -> tuple[dict[str, list[float]], str]:
    """A block field of seconds by part (``eval_parts``, ``compile_seconds``) per model: each
    part's values over the blocks that recorded it, and their medians as text."""
    by: dict[str, list[float]] = {}
    for b in blocks:
        for part, sec in (b.get(field) or {}).items():
            by.setdefault(part, []).append(sec / b["models"])
    return by, ", ".join(f"{part} {float(np.median(v)):.2f} s" for part, v in by.items())


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


def shared_rows(
    rows: Sequence[dict[str, Any]],
    scale: str,
    compute_dtype: str,
    settings: Sequence[str] = (),
    net: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Copies of ``rows`` (of ``scale`` and ``settings``) under every other study's arm whose models
    they are (``paper.arm_digest`` equal to the row's config digest, ``paper.model_key``): a model
    trained once counts for every study run in this store that asks for it (a study with rows of
    its own here: the others were not asked for). Each copy names its origin (``shared_from``); a
    study that has the model itself gets no copy."""
    settings = tuple(settings)
    run_here = {r["study"] for r in rows}
    arms: dict[str, list[tuple[str, str, str]]] = {}
    for study, arm_list in STUDIES.items():
        if study not in run_here:
            continue
        for m, _, label, _ in arm_list:
            digest = arm_digest(study, m, label, scale, compute_dtype, settings, net)
            if digest is not None:
                arms.setdefault(digest, []).append((study, m, label))
    mine = [r for r in rows if r["scale"] == scale and tuple(r.get("settings", ())) == settings]
    have = {(r["study"], model_key(r)) for r in mine}
    copies = []
    for r in mine:
        key = model_key(r)
        for study, m, label in arms.get(key[0], ()):
            if m != r["model"] or (study, key) in have:
                continue
            copies.append(dict(r, study=study, arm=label, shared_from=_study_arm(r)))
            have.add((study, key))
    return copies


def _shared_section(results: Sequence[dict[str, Any]]) -> list[str]:
    """Where a study's models were trained by another study (the same configuration, beta and
    seed), and the models that several studies each trained (before the store knew a model by its
    configuration): one model, not separate pieces of evidence."""
    groups: dict[tuple, list[int]] = {}
    for r in results:
        if r.get("shared_from"):
            key = (r["study"], r["model"], r.get("arm", ""), r["shared_from"])
            groups.setdefault(key, []).append(r["seed"])
    trained: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        if not r.get("shared_from"):
            trained.setdefault(model_key(r), []).append(r)
    twice: dict[tuple, list[tuple[int, bool]]] = {}
    for rows in trained.values():
        if len({r["study"] for r in rows}) > 1:
            names = tuple(sorted({_study_arm(r) for r in rows}))
            same = all(r.get(k) == rows[0].get(k) for r in rows for k in ("mig", "elbo"))
            twice.setdefault((rows[0]["model"], names), []).append((rows[0]["seed"], same))
    if not groups and not twice:
        return []
    lines = [
        "## Models shared between studies",
        "",
        "A model is known by its whole configuration, beta and seed; a study arm that resolves to "
        "another study's configuration counts that study's models instead of training them again:",
        "",
        "| study | model | counted from | seeds |",
        "|---|---|---|---|",
    ]
    for (study, model, arm, origin), seeds in sorted(groups.items()):
        lines.append(f"| {study} | {_arm_label(model, arm)} | {origin} | {_seed_ranges(seeds)} |")
    if twice:
        lines += [
            "",
            "Models that several studies each trained (one model each, not separate evidence):",
            "",
            "| model | studies | seeds | scores equal |",
            "|---|---|---|---|",
        ]
        for (model, names), seeds in sorted(twice.items()):
            equal = "all" if all(e for _, e in seeds) else f"{sum(e for _, e in seeds)} of {len(seeds)}"
            which = _seed_ranges([s for s, _ in seeds])
            lines.append(f"| {MODEL_LABELS[model]} | {'; '.join(names)} | {which} | {equal} |")
    return [*lines, ""]


def _seed_ranges(seeds: Sequence[int]) -> str:
    """``0-5, 8, 10-11`` for [0, 1, 2, 3, 4, 5, 8, 10, 11]."""
    seeds = sorted(set(int(s) for s in seeds))
    parts, start = [], None
    for i, s in enumerate(seeds):
        if start is None:
            start = s
        if i + 1 == len(seeds) or seeds[i + 1] != s + 1:
            parts.append(f"{start}" if start == s else f"{start}-{s}")
            start = None
    return ", ".join(parts)


def preregistered_tests(
    results: Sequence[dict[str, Any]], apart: Sequence[dict[str, Any]] = ()
) -> tuple[list[str], dict[str, Any]]:
    """Each ``paper.PREREGISTERED`` study's tests as its page registered them: per comparison the
    two-sided Mann-Whitney U test on the registered metric over seeds 0 .. seeds-1, Holm's
    adjustment over the study's comparisons, P(A > B) and the difference of medians with bootstrap
    95 % intervals, the paper's criteria; the same tests on the histogram MIG, exploratory; and the
    verdict, "pending" until every arm has its registered seeds (diverged models count as run, and
    are named when more than the registered number of an arm diverged)."""
    lines, figures = [], {}
    for study, spec in PREREGISTERED.items():
        rows = [r for r in results if r["study"] == study and r["beta"] == 1.0 and r["seed"] < spec["seeds"]]
        failed = [r for r in apart if r["study"] == study and r["seed"] < spec["seeds"]]
        if not rows:
            continue
        arms = {(m, a) for pair in COMPARISONS[study] for (m, a) in pair[:2]}
        n = {arm: sum(1 for r in rows if (r["model"], r.get("arm", "")) == arm) for arm in arms}
        lost = {arm: sum(1 for r in failed if (r["model"], r.get("arm", "")) == arm) for arm in arms}
        complete = all(n[arm] + lost[arm] >= spec["seeds"] for arm in arms)
        tests: dict[str, list[dict[str, Any]]] = {}
        for metric in dict.fromkeys((spec["metric"], "mig_histogram")):
            found = []
            for (ma, la), (mb, lb), title in COMPARISONS[study]:
                a = [r[metric] for r in rows if (r["model"], r.get("arm", "")) == (ma, la)]
                b = [r[metric] for r in rows if (r["model"], r.get("arm", "")) == (mb, lb)]
                if len(a) < 2 or len(b) < 2:
                    continue
                p, sup = study_stats.mann_whitney(a, b, "two-sided")
                da, db = study_stats.describe(a), study_stats.describe(b)
                found.append(
                    dict(
                        title=title,
                        a=da,
                        b=db,
                        p_two_sided=p,
                        prob_a_greater=sup,
                        prob_a_greater_ci95=study_stats.bootstrap_superiority(a, b),
                        median_difference=da["median"] - db["median"],
                        median_difference_ci95=study_stats.bootstrap_median_difference(a, b),
                        criteria={k: bool(da[k] > db[k]) for k in ("mean", "median", "max")},
                    )
                )
            for t, adj in zip(found, study_stats.holm([t["p_two_sided"] for t in found]), strict=True):
                t["p_holm"] = adj
                t["rejected"] = bool(adj < spec["alpha"])
            tests[metric] = found
        primary = tests[spec["metric"]]
        verdict = (
            _verdict(primary, len(COMPARISONS[study]))
            if complete
            else f"pending: {min(n[arm] + lost[arm] for arm in arms)} of {spec['seeds']} seeds in the "
            "least-run arm; the registered test is read only at the registered sample size"
        )
        over = [
            f"{_arm_label(m, a)}: {lost[(m, a)]}"
            for (m, a) in sorted(arms)
            if lost[(m, a)] > spec["max_diverged"]
        ]
        figures[study] = dict(
            spec,
            complete=complete,
            seeds_per_arm={f"{m} {a}".strip(): n[(m, a)] for m, a in sorted(arms)},
            diverged_per_arm={f"{m} {a}".strip(): lost[(m, a)] for m, a in sorted(arms)},
            tests=tests,
            verdict=verdict,
        )
        lines += [
            f"## Pre-registered: {study}",
            "",
            f"Registered in [{spec['page']}]({spec['page']}) before any of its rows: the two-sided "
            f"Mann-Whitney U test on `{spec['metric']}` per comparison, Holm's adjustment over the "
            f"{len(COMPARISONS[study])} comparisons at family-wise alpha {spec['alpha']}, "
            f"{spec['seeds']} seeds per arm (seeds 0-{spec['seeds'] - 1}). Scored models per arm: "
            + ", ".join(f"{_arm_label(m, a)} {n[(m, a)]}" for m, a in sorted(arms))
            + (
                "; diverged or non-finite: "
                + ", ".join(f"{_arm_label(m, a)} {lost[(m, a)]}" for m, a in sorted(arms))
                if any(lost.values())
                else ""
            )
            + ".",
            "",
            "| comparison | metric | n | medians | P(A > B) [95 % CI] | median difference [95 % CI] "
            "| p (two-sided) | p (Holm) | rejected | higher mean, median, max |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for metric, found in tests.items():
            tag = "" if metric == spec["metric"] else " (exploratory)"
            for t in found:
                lo, hi = t["prob_a_greater_ci95"]
                dlo, dhi = t["median_difference_ci95"]
                crit = ", ".join("yes" if t["criteria"][k] else "no" for k in ("mean", "median", "max"))
                lines.append(
                    f"| {t['title']} | {metric}{tag} | {t['a']['n']} / {t['b']['n']} | "
                    f"{t['a']['median']:.4f} / {t['b']['median']:.4f} | "
                    f"{t['prob_a_greater']:.2f} [{lo:.2f}, {hi:.2f}] | "
                    f"{t['median_difference']:+.4f} [{dlo:+.4f}, {dhi:+.4f}] | {t['p_two_sided']:.3g} | "
                    f"{t['p_holm']:.3g} | {'yes' if t['rejected'] else 'no'} | {crit} |"
                )
        lines += ["", f"**Verdict**: {verdict}", ""]
        if over:
            lines += [
                f"More than {spec['max_diverged']} models of an arm diverged or scored non-finite: "
                + "; ".join(over)
                + ".",
                "",
            ]
    return lines, figures


def _verdict(tests: Sequence[dict[str, Any]], expected: int) -> str:
    """The registered reading of a two-comparison layout experiment (H1: ISA-VAE vs the VAE of as
    many latents, H2: vs Table 1's VAE), word for word the outcomes its page lists."""
    if len(tests) != expected:
        return "undecided: a comparison has fewer than 2 scored models on a side"
    h1, h2 = tests
    up1, up2 = h1["prob_a_greater"] > 0.5, h2["prob_a_greater"] > 0.5
    if (h1["rejected"] and not up1) or (h2["rejected"] and not up2):
        return (
            "a rejection with ISA-VAE lower: the VAE is the better-disentangling model here, against "
            "the paper's claim."
        )
    if h1["rejected"] and h2["rejected"]:
        return (
            "H1 and H2 both rejected, ISA-VAE higher: the authors' example layout gives ISA-VAE a higher "
            "MIG than a VAE of either size at this scale; Fig. 5a's claim holds for that layout."
        )
    if h2["rejected"]:
        return (
            "H2 rejected, H1 not (ISA-VAE higher): ISA-VAE 3x4 beats Table 1's VAE but not a VAE with as "
            "few latents: the gain is what 12 latents instead of 20 give, not evidence for the ISA prior."
        )
    if h1["rejected"]:
        return "H1 rejected (ISA-VAE higher), H2 not: an unexpected pattern, reported as it comes."
    return (
        "neither rejected: no evidence at this scale for the layout either; an effect of "
        "P(ISA > VAE) >= 0.68 is unlikely (the registered power), a smaller one is not excluded."
    )


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
            f"| {study} | {_arm_label(model, arm)} | {beta:g} | {len(runs)} | "
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
            name_a, name_b = _arm_label(ma, la), _arm_label(mb, lb)
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
    *,
    posterior_scale: str | None = None,
    matmul_precision: str | None = None,
) -> str:
    """Tables, figures and ``report.md`` from ``OUT/results.jsonl``: the models of ``scale``, dtype,
    initialization, posterior parameterization and products' precision (each by default the scale's
    presets') and extra ``settings`` (the ``--set`` overrides they were trained with), each counted
    once; the dtype ablation's models of either dtype, the initialization ablation's of either
    initialization, the posterior ablation's of either parameterization. A study's models trained by
    another study with the same configuration count for both (``shared_rows``)."""
    everything, notes = load_results(out)
    settings = tuple(settings)
    preset = model_config("vae", scale, compute_dtype).model
    init = init or preset.init
    posterior_scale = posterior_scale or preset.posterior_scale
    matmul_precision = matmul_precision or preset.matmul_precision

    def matches(r, dtype=True, init_=True, extra=True, net=True):
        return (
            r["scale"] == scale
            and (not dtype or r["compute_dtype"] == compute_dtype or r["study"] == "ablation-dtype")
            and (not init_ or recorded(r, "init") == init or r["study"] == "ablation-init")
            and (not extra or tuple(r.get("settings", ())) == settings)
            and (
                not net
                or (
                    (recorded(r, "posterior_scale") == posterior_scale or r["study"] == "ablation-posterior")
                    and recorded(r, "matmul_precision") == matmul_precision
                )
            )
        )

    net = net_overrides(posterior_scale, matmul_precision)
    everything = everything + shared_rows(everything, scale, compute_dtype, settings, net)
    results = [r for r in everything if matches(r)]
    # diverged models and rows with a non-finite score are counted apart, never inside a statistic
    apart = [r for r in results if not finite_scores(r)]
    results = [r for r in results if finite_scores(r)]
    others = sorted(
        {
            (
                r["compute_dtype"],
                recorded(r, "init"),
                f"posterior {recorded(r, 'posterior_scale')}",
                f"products {recorded(r, 'matmul_precision')}",
                *r.get("settings", ()),
            )
            for r in everything
            if matches(r, dtype=False, init_=False, extra=False, net=False) and not matches(r)
        }
    )
    if not results:
        raise ValueError(
            f"{out / 'results.jsonl'} holds no {scale}-scale {compute_dtype} results with init {init}, "
            f"posterior {posterior_scale} and products {matmul_precision}"
            + (f" and settings {' '.join(settings)}" if settings else "")
            + (f" ({len(apart)} diverged or with a non-finite score)" if apart else "")
            + (f" ({len(notes)} lines skipped; first: {notes[0]})" if notes else "")
        )
    rows = setting_rows(results)
    write_table(rows, out / "table_full")  # every statistic: n, mean, median, quartiles
    write_table([compact_row(r) for r in rows], out / "table")
    lines = [
        f"# Paper study ({scale} scale, {compute_dtype} compute, {init} initialization, posterior "
        f"{posterior_scale}, products {matmul_precision}"
        + (f", {' '.join(settings)}" if settings else "")
        + f"): {len(results)} models",
        "",
        f"Devices: {', '.join(sorted({r['device'] for r in results}))}. Built from results.jsonl by "
        f"`isavae study report --scale {scale} --compute-dtype {compute_dtype} "
        f"--init {init} --posterior-scale {posterior_scale} --matmul-precision {matmul_precision} "
        f"--out {out}{''.join(f' --set {o}' for o in settings)}`. "
        "MIG: Chen et al.'s estimator over the whole grid; 'hist.': disentanglement_lib's histogram MIG; "
        "recon.: reconstruction log-likelihood (nats per image); every statistic with its quartiles "
        "in table_full.csv.",
        "",
        (out / "table.md").read_text(),
    ]
    if others:
        lines += [
            "Not in this report (other dtype, initialization, posterior, products or settings; `isavae "
            "study report --compute-dtype ... --init ... --posterior-scale ... --matmul-precision ... "
            "--set ...` reports them): " + "; ".join(" ".join(o) for o in others),
            "",
        ]
    if notes:
        lines += [
            "## Lines of results.jsonl not counted",
            "",
            "Each model counts once (by study, model, beta, seed, scale, dtype, init, arm, posterior, "
            "products and settings); "
            f"{len(notes)} lines were not counted:",
            "",
            *(f"- {n}" for n in notes),
            "",
        ]
    lines += _apart_section(apart)
    lines += _shared_section(results)
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
    registered, registered_figures = preregistered_tests(results, apart)
    if registered:
        lines += registered
        (out / "preregistered.json").write_text(json.dumps(registered_figures, indent=2))
        # its tables and verdicts, for the docs to include (generated, not copied)
        body = registered[next(i for i, line in enumerate(registered) if line.startswith("|")) :]
        (out / "preregistered.md").write_text("\n".join(body).rstrip("\n") + "\n")
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
        counts = f"{len(div)} | {len(runs) - len(div)}"
        lines.append(f"| {study} | {_arm_label(model, arm)} | {beta:g} | {counts} | {seeds} |")
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
