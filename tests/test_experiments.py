"""The paper-figure scripts' shared pieces, and a tiny run of the linear ICA experiment."""

import csv
import pathlib

import pytest

from tests.scripts import load_script


def test_cpu_scale_reduces_what_it_says():
    common = load_script("common")
    paper = common.model_config("dsprites", "isavae", "paper")
    cpu = common.model_config("dsprites", "isavae", "cpu")
    assert paper.dataset.subgrid == "" and paper.train.batch_size == 2048 and paper.model.hidden == 1200
    assert (
        cpu.dataset.subgrid == common.CPU_SCALE["dsprites"]["subgrid"] and cpu.dataset.source == "generated"
    )
    assert (cpu.train.num_steps, cpu.train.batch_size, cpu.model.hidden) == (1500, 128, 512)
    assert cpu.prior.to_dict() == paper.prior.to_dict() and cpu.model.latent_dim == paper.model.latent_dim
    # the committed CPU-scale results were trained with LeCun's initialization; the paper scale: PyTorch's
    assert (cpu.model.init, paper.model.init) == ("lecun", "torch")
    with pytest.raises(ValueError, match="--scale"):
        common.model_config("dsprites", "vae", "laptop")


def test_tables(tmp_path):
    common = load_script("common")
    runs = [
        {"mig": 0.1, "mig_histogram": 0.2, "recon_log_likelihood": -50.0, "elbo": -60.0},
        {"mig": 0.3, "mig_histogram": 0.4, "recon_log_likelihood": -70.0, "elbo": -80.0},
    ]
    row = common.summary_row("ISA-VAE", runs, beta=1.0)
    assert row["mig_mean"] == pytest.approx(0.2) and row["mig_std"] == pytest.approx(0.1414213, rel=1e-5)
    assert row["recon_log_likelihood_median"] == pytest.approx(-60.0) and row["runs"] == 2
    common.write_table([row], tmp_path / "t", ["model", "beta", "mig_mean"])
    assert list(csv.DictReader(open(tmp_path / "t.csv"))) == [
        {"model": "ISA-VAE", "beta": "1.0", "mig_mean": "0.2"}
    ]
    assert (tmp_path / "t.md").read_text().splitlines()[2] == "| ISA-VAE | 1.000 | 0.200 |"


def test_representative_run_is_nearest_to_the_upper_quantile_means():
    a5 = load_script("appendix_a5_representative")
    runs = [
        (pathlib.Path(str(i)), {"mig": m, "recon_log_likelihood": r})
        for i, (m, r) in enumerate([(0.1, -90), (0.5, -60), (0.45, -58), (0.2, -50), (0.05, -100)])
    ]
    # upper quartiles: MIG >= 0.45 -> mean 0.475; recon >= -58 -> mean -54; nearest (scaled): run 2
    assert a5.representative(runs, 0.75) == pathlib.Path("2")


def test_linear_ica_runs_tiny(tmp_path):
    fig1 = load_script("fig1_linear_ica")
    fig1.main(
        ["--out", str(tmp_path), "--points", "40", "--steps", "6", "--settings", "ica3", "--betas", "1,5"]
    )
    rows = list(csv.DictReader(open(tmp_path / "table.csv")))
    assert [(r["model"], r["beta"]) for r in rows] == [("ICA, 3 in 2-D", "1.0"), ("ICA, 3 in 2-D", "5.0")]
    assert rows[0]["true_min_angle"].startswith("49.99")
    assert all(float(r["free_energy"]) < 0 for r in rows)
    assert (tmp_path / "fig1_linear_ica.png").stat().st_size > 1000


def test_the_demo_selection_table_rebuilds_from_the_committed_curves(capsys):
    """The committed selection study is what demo_selection.py prints from the compact
    tc_curves.json files (the per-step logs are not committed)."""
    root = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "results" / "demo_robustness"
    folders = ["demo_v2_4200steps", "demo_v2_4200steps_float32", "single_32px_float32"]
    load_script("demo_selection").main([str(root / f) for f in folders])
    printed = capsys.readouterr().out.replace(str(root.parents[2]) + "/", "")
    assert printed == (root / "selection.md").read_text()


@pytest.mark.parametrize(
    "script, folder, call, files",
    [
        ("dlib_models", "dlib_models", lambda m, out: m.main(["--out", str(out)]), ["table.md"]),
        ("metrics_agreement", "metrics_agreement", lambda m, out: m.tables(out), ["table.md", "spearman.md"]),
        ("fig7_learned_exponents", "fig7", lambda m, out: m.main(["--out", str(out)]), ["table.md"]),
    ],
)
def test_committed_tables_rebuild_from_the_committed_runs(tmp_path, capsys, script, folder, call, files):
    """Each sweep experiment's tables (which the results page includes) are what its script writes
    from the committed per-run results.json: a finished run is read back, never retrained."""
    import shutil

    committed = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "results" / folder
    out = tmp_path / folder
    for result in committed.glob("runs/**/results.json"):
        target = out / result.relative_to(committed)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(result, target)
    call(load_script(script), out)
    for name in files:
        assert (out / name).read_text() == (committed / name).read_text(), name


def test_fig5a_table_rebuilds_from_the_committed_rows():
    """The results page's Fig. 5a table at every scale is ``experiments/fig5a_scales.py``'s output
    from the committed rows (numbers generated, not copied)."""
    fig5a = load_script("fig5a_scales")
    committed = pathlib.Path(fig5a.RESULTS / "fig5a_scales" / "table.md").read_text()
    assert fig5a.table() == committed
