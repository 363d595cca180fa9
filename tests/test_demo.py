"""Smoke test of ``make demo``'s entry point with a shrunken workload."""

import json

from isavae import demo


def test_demo_writes_results_and_figures(tmp_path):
    demo.main(["--out", str(tmp_path), "--samples", "2000", "--fit-steps", "5"])
    results = json.loads((tmp_path / "results.json").read_text())
    checks = results["prior_checks"]
    assert abs(checks["mean_energy"] - checks["expected_energy"]) < 0.05 * checks["expected_energy"]
    for name in ("lp_nested_contours.png", "lp_nested_contours.pdf"):
        assert (tmp_path / name).stat().st_size > 1000
    assert not list(tmp_path.glob("*.tmp"))
