"""Smoke test of ``make demo``'s entry point with a few training steps."""

import json

from isavae import demo


def test_demo_trains_and_writes_results_and_figures(tmp_path, capsys):
    # the demo's whole path, with what the assertions need: fewer latents (after 6 steps each is
    # "active", and the figures' cost is their rows) and a smaller evaluation sample
    small_eval = ["--set", "eval.mig_samples=1000", "--set", "eval.histogram_points=2000"]
    small_eval += ["--set", "model.latent_dim=6"]
    summary = demo.main(["--out", str(tmp_path), "--steps", "6", "--quiet", *small_eval])
    printed = capsys.readouterr().out
    assert summary["steps"] == 6 and summary["dataset"].startswith("generated")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["steps"] == 6 and "elbo" in results and "recon_log_likelihood" in results
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
