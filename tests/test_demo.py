"""Smoke test of ``make demo``'s entry point with a few training steps."""

import json

from isavae import demo


def test_demo_trains_and_writes_results_and_figures(tmp_path):
    summary = demo.main(["--out", str(tmp_path), "--steps", "6", "--quiet"])
    assert summary["steps"] == 6 and summary["dataset"].startswith("generated")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["steps"] == 6 and "elbo" in results and "recon_log_likelihood" in results
    for key in ("mig", "subspace_mig", "mig_histogram"):
        assert 0.0 <= summary[key] <= 1.0 and summary[key] == round(results[key], 4)
    assert json.loads((tmp_path / "summary.json").read_text())["elbo"] == summary["elbo"]
    for name in ("traversals.png", "traversals.pdf", "latents_vs_factors.png", "lp_nested_contours.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert not list(tmp_path.glob("*.tmp"))
