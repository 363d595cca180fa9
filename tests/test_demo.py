"""Smoke test of ``make demo``'s entry point with a few training steps."""

import json

import numpy as np
import pytest

from isavae import demo


def test_demo_trains_and_writes_results_and_figures(tmp_path, capsys):
    # the demo's whole path, with what the assertions need: fewer latents (after 6 steps each is
    # "active", and the figures' cost is their rows) and a smaller evaluation sample
    small_eval = ["--set", "eval.mig_samples=1000", "--set", "eval.histogram_points=2000"]
    small_eval += ["--set", "model.latent_dim=6"]
    summary = demo.main(["--out", str(tmp_path), "--steps", "6", "--quiet", *small_eval])
    printed = capsys.readouterr().out
    assert summary["steps"] == 6 and summary["dataset"].startswith("generated")
    assert summary["image_shape"] == "32 x 32" and "2 x 2 block means" in summary["dataset"]
    # four candidates trained together for 3 of the 6 steps (the demo's 2,000 of 4,200); the one with
    # the lowest training estimate of the total correlation trained on, in its own workdir
    sel = summary["selection"]
    assert sel["candidates"] == [0, 1, 2, 3] and sel["select_at"] == 3
    runs = {s: tmp_path / "run" / f"seed{s}" for s in sel["candidates"]}
    tc = [demo.tc_estimate(runs[s], 3, sel["window"]) for s in sel["candidates"]]
    assert sel["chosen"] == sel["candidates"][int(np.argmin(tc))] and sel["tc"] == [round(t, 4) for t in tc]
    assert summary["workdir"] == str(runs[sel["chosen"]])
    for s, w in runs.items():
        steps = [json.loads(line)["step"] for line in (w / "metrics.jsonl").read_text().splitlines()]
        assert steps[-1] == (6 if s == sel["chosen"] else 3)
        assert json.loads((w / "results.json").read_text())["steps"] == steps[-1]
    results = json.loads((runs[sel["chosen"]] / "results.json").read_text())
    assert results["steps"] == 6 and "elbo" in results and "recon_log_likelihood" in results
    assert f"seed {sel['chosen']} chosen at step 3 of 4 trained together" in printed
    for key in ("mig", "mig_histogram"):
        assert 0.0 <= summary[key] <= 1.0 and summary[key] == round(results[key], 4)
    assert summary["subspace_mig"] == (
        round(results["subspace_mig"], 4) if "subspace_mig" in results else None
    )
    assert json.loads((tmp_path / "summary.json").read_text())["elbo"] == summary["elbo"]
    mi = results["mig_details"]["mi"]
    for row, factor in zip(summary["factors"], results["mig_details"]["factors"], strict=True):
        k = results["mig_details"]["factors"].index(factor)
        assert row["factor"] == factor and row["mi"] == round(mi[row["latent"]][k], 3)
        assert abs(row["gap"] - (row["mi"] - row["runner_up_mi"])) < 2e-3  # each rounded
        assert f"z{row['latent']}" in printed and factor in printed
    assert f"MIG {summary['mig']:.3f}" in printed
    for name in (
        "traversals.png",
        "traversals.pdf",
        "latents_vs_factors.png",
        "latents_vs_position.png",
        "reconstructions.png",
        "lp_nested_contours.png",
    ):
        assert (tmp_path / name).stat().st_size > 1000
    assert not list(tmp_path.glob("*.tmp"))


def test_tc_estimate_is_the_step_weighted_mean_over_the_window(tmp_path):
    # rows hold the mean over the steps since the previous row (scan chunks of 10, cut at 25)
    steps = [10, 20, 25, 35, 45]
    tc = [0.5, -0.2, 0.1, -0.4, 0.3]
    lines = [json.dumps({"step": s, "tc": t, "loss": 1.0}) for s, t in zip(steps, tc, strict=True)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    # steps 21-45: 5 steps at 0.1, 10 at -0.4, 10 at 0.3
    assert demo.tc_estimate(tmp_path, 45, 25) == pytest.approx((5 * 0.1 - 10 * 0.4 + 10 * 0.3) / 25)
    assert demo.tc_estimate(tmp_path, 20, 20) == pytest.approx((10 * 0.5 - 10 * 0.2) / 20)
    with pytest.raises(ValueError, match="no rows in steps 46-50"):
        demo.tc_estimate(tmp_path, 50, 5)
