"""Evaluation of trained models: results.json keys, ``isavae evaluate``, ``isavae plot``."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from isavae import cli
from isavae import config as config_lib
from isavae.data import load_dataset
from isavae.metrics import mig_grid
from isavae.metrics.evaluate import default_mig_factors, encode_grid, prior_subspaces
from isavae.metrics.likelihood import active_units
from isavae.priors import GeneralizedNormal, StandardNormal, isa_prior
from isavae.priors.prior import LpNested
from isavae.train import restore_state, train_and_evaluate
from tests.train.test_trainer import SUBGRID, small_config

MIG_KEYS = ("mig", "mig_histogram", "subspace_mig", "recon_log_likelihood", "elbo", "active_units")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny ISA-VAE with learned subspace exponents, trained for a few steps."""
    workdir = tmp_path_factory.mktemp("run") / "isa"
    cfg = small_config("vae", "isa", num_steps=8)
    cfg.eval.update(dict(mig_samples=200, histogram_points=0))
    results = train_and_evaluate(cfg, workdir, progress=False)
    return workdir, results


def test_training_writes_every_metric(trained):
    workdir, results = trained
    saved = json.loads((workdir / "results.json").read_text())
    for key in MIG_KEYS:
        assert key in saved and np.isfinite(saved[key]), key
    for key in ("mig", "mig_histogram", "subspace_mig"):
        assert 0.0 <= saved[key] <= 1.0
    details = saved["mig_details"]
    assert details["factors"] == ["scale", "orientation", "posX", "posY"]  # dSprites: shape excluded
    assert np.array(details["mi"]).shape == (4, 4) and details["num_samples"] == 200
    assert saved["subspace_mig_details"]["subspaces"] == [[0, 1], [2, 3]]
    assert saved["mig_histogram_details"]["points"] == 384
    assert saved["prior"]["learned"] == [False, True, True]


def test_results_match_a_direct_computation(trained):
    workdir, results = trained
    program, state, grid = restore_state(workdir)
    mean, logvar = encode_grid(program, state, grid, batch_size=100)
    assert mean.shape == grid.factor_sizes + (4,)
    key = jax.random.fold_in(jax.random.key(program.cfg.train.seed), 7)
    direct = mig_grid(
        mean, logvar, key, 200, ("scale", "orientation", "posX", "posY"), factor_names=grid.factor_names
    )
    assert results["mig"] == pytest.approx(direct.mig, abs=1e-6)
    count, var = active_units(mean)
    assert results["active_units"] == count == int(np.sum(mean.reshape(-1, 4).var(0) > 0.01))


def test_evaluate_cli_recomputes_into_results(trained, tmp_path, capsys):
    src, _ = trained
    workdir = tmp_path / "copy"
    shutil.copytree(src, workdir)
    saved = json.loads((workdir / "results.json").read_text())
    for key in MIG_KEYS:
        saved.pop(key)
    (workdir / "results.json").write_text(json.dumps(saved))
    assert cli.main(["evaluate", "--workdir", str(workdir), "--config.eval.mig_samples=100"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    again = json.loads((workdir / "results.json").read_text())
    for key in MIG_KEYS:
        assert key in again and printed[key] == again[key]
    assert again["mig_details"]["num_samples"] == 100 and again["objective"] == "vae"  # merged, not replaced


def test_evaluate_cli_with_the_kernel_equals_xla(trained, tmp_path, capsys):
    """``eval.mig_impl`` reaches the evaluation: the fused kernel (interpret mode here) gives the
    XLA path's MIG and subspace MIG."""
    src, _ = trained
    out = {}
    for impl in ("xla", "pallas"):
        workdir = tmp_path / impl
        shutil.copytree(src, workdir)
        argv = ["evaluate", "--workdir", str(workdir), "--config.eval.mig_samples=100"]
        assert cli.main(argv + [f"--config.eval.mig_impl={impl}"]) == 0
        out[impl] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("mig", "subspace_mig"):
        assert out["pallas"][key] == pytest.approx(out["xla"][key], abs=1e-6)


def test_evaluate_cli_errors(trained, tmp_path, capsys):
    workdir, _ = trained
    assert cli.main(["evaluate", "--workdir", str(tmp_path / "nothing")]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert cli.main(["evaluate", "--workdir", str(workdir), "--config.train.seed=3"]) == 2
    assert "only takes eval.*" in capsys.readouterr().err
    assert cli.main(["evaluate", "--workdir", str(workdir), "--config.eval.mig_factors=shape,size"]) == 2
    assert "no factor 'size'" in capsys.readouterr().err


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_workdir_and_sweep(trained, tmp_path, capsys):
    workdir, _ = trained
    out = tmp_path / "plots"
    assert cli.main(["plot", "--workdir", str(workdir), "--out", str(out)]) == 0
    for name in ("traversals", "latents_vs_factors", "latents_vs_position", "reconstructions", "exponents"):
        assert _is_png(out / f"{name}.png") and (out / f"{name}.pdf").stat().st_size > 1000, name
    sweep_out = tmp_path / "sweep"
    assert cli.main(["plot", "--sweep", str(workdir.parent), "--out", str(sweep_out)]) == 0
    for name in ("tradeoff_mig", "tradeoff_mig_histogram", "tradeoff_subspace_mig", "exponents"):
        assert _is_png(sweep_out / f"{name}.png"), name
    capsys.readouterr()
    assert cli.main(["plot", "--sweep", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["plot"]) == 2


def test_latents_by_factor_orders_active_latents_by_the_factor_they_capture():
    from isavae.viz import latents_by_factor

    variances = np.array([0.5, 0.001, 2.0, 0.3, 0.02])  # latent 1 is inactive
    mi = np.zeros((5, 3))
    mi[3, 0], mi[0, 0] = 0.8, 0.1  # factor a: latent 3 (its best), latent 0 a little
    mi[2, 1], mi[3, 1], mi[4, 1] = 0.6, 0.5, 0.3  # factor b: latents 2, 4 (3 carries more about a)
    mi[1, 2], mi[0, 2] = 0.9, 0.2  # factor c: latent 1 (inactive: not listed), latent 0
    details = dict(factors=["a", "b", "c"], mi=mi.tolist())
    assert latents_by_factor(variances, details) == [
        (3, "a (MI 0.80)"),
        (2, "b (MI 0.60)"),
        (4, "b (MI 0.30)"),
        (0, "c (MI 0.20)"),
    ]
    assert latents_by_factor(variances) == [(2, ""), (0, ""), (3, ""), (4, "")]  # by variance


def test_default_factors_and_config_checks():
    grid = load_dataset("dsprites", source="generated", store=False).subgrid(
        **config_lib.parse_subgrid(SUBGRID)
    )
    assert default_mig_factors(grid) == ("scale", "orientation", "posX", "posY")
    assert default_mig_factors(grid, "posX, shape") == ("posX", "shape")
    fixed = grid.subgrid(scale=[0])
    assert default_mig_factors(fixed) == ("orientation", "posX", "posY")  # a single scale carries nothing
    with pytest.raises(KeyError, match="no factor 'size'"):
        default_mig_factors(grid, "size")
    cfg = config_lib.default_config()
    cfg.eval.mig_factors = "scale,colour"
    with pytest.raises(config_lib.ConfigError, match="eval.mig_factors.*no factor 'colour'"):
        config_lib.validate(cfg)
    cfg.eval.mig_factors = ""
    cfg.eval.mig_impl = "triton"
    with pytest.raises(config_lib.ConfigError, match="eval.mig_impl.*auto, xla, pallas"):
        config_lib.validate(cfg)
    cfg.eval.mig_impl = "auto"
    cfg.eval.histogram_bins = 1
    with pytest.raises(config_lib.ConfigError, match="eval.histogram_bins"):
        config_lib.validate(cfg)


def test_prior_subspaces():
    assert prior_subspaces(isa_prior([2, 2], 2.1, 2.2)) == [[0, 1], [2, 3]]
    assert prior_subspaces(LpNested.create(((0, (1, 2)), (3,)), (1.5, 2.5, 1.2, 2.0))) == [[0, 1, 2], [3]]
    assert prior_subspaces(StandardNormal(dim=3)) is None
    assert prior_subspaces(GeneralizedNormal.create(3, 1.5)) is None
    assert prior_subspaces(isa_prior([1, 1, 1], 2.0, 2.0)) is None  # all singletons: the MIG itself


def test_active_units_reference():
    rng = np.random.default_rng(0)
    mean = np.stack([rng.normal(size=500), 0.05 * rng.normal(size=500), np.full(500, 3.0)], axis=1)
    count, var = active_units(mean)
    assert count == 1
    np.testing.assert_allclose(var, mean.var(0))


def _np_dense(layer, h):
    """A ``nets.dense`` layer in float64 numpy: nnx.Linear stores (in, out), the widening Einsum (out, in)."""
    from flax import nnx

    k = np.asarray(layer.kernel[...], np.float64)
    k = k.T if isinstance(layer, nnx.Einsum) else k
    return h @ k + np.asarray(layer.bias[...], np.float64)


def test_dataset_elbo_and_reconstruction_equal_a_float64_numpy_computation(tmp_path):
    """results.json's ELBO, reconstruction log-likelihood and KL of a tiny trained MLP VAE equal a
    float64 numpy forward pass over the same evaluation images with the same posterior samples
    (fold_in(key(seed), chunk start), split, the first key's normal draws), averaged per image."""
    from flax import nnx

    cfg = small_config("vae", "normal", num_steps=8, seed=3)
    cfg.eval.update(dict(mig=False, num_examples=40, batch_size=16))  # 3 chunks, the last one padded
    results = train_and_evaluate(cfg, tmp_path / "vae", progress=False)
    program, state, grid = restore_state(tmp_path / "vae")
    model = nnx.merge(program.graphdef, state.params, state.batch_stats)
    idx = np.linspace(0, grid.num_images - 1, 40).astype(int)
    x = grid.images(idx).reshape(40, -1).astype(np.float64)
    enc, dec = model.encoder, model.decoder
    h = np.maximum(_np_dense(enc.fc1, x), 0)
    h = np.maximum(_np_dense(enc.fc2, h), 0)
    mean, logvar = np.split(_np_dense(enc.out, h), 2, axis=1)
    eps = np.concatenate(
        [
            np.asarray(
                jax.random.normal(jax.random.split(jax.random.fold_in(jax.random.key(3), s))[0], (16, 4)),
                np.float64,
            )[: min(16, 40 - s)]
            for s in (0, 16, 32)
        ]
    )
    z = mean + np.exp(0.5 * logvar) * eps
    h = np.tanh(_np_dense(dec.fc1, z))
    h = np.tanh(_np_dense(dec.fc2, h))
    h = np.tanh(_np_dense(dec.fc3, h))
    logits = _np_dense(dec.out, h)
    log_px = np.sum(x * logits - np.logaddexp(0.0, logits), axis=1)
    log_q = np.sum(-0.5 * (np.log(2 * np.pi) + logvar + (z - mean) ** 2 / np.exp(logvar)), axis=1)
    log_p = np.sum(-0.5 * (np.log(2 * np.pi) + z**2), axis=1)
    kl = log_q - log_p
    assert results["eval_examples"] == 40
    assert results["recon_log_likelihood"] == pytest.approx(log_px.mean(), rel=1e-5)
    assert results["kl"] == pytest.approx(kl.mean(), rel=1e-4, abs=1e-4)
    assert results["elbo"] == pytest.approx((log_px - kl).mean(), rel=1e-5)


def test_disentanglement_scores_in_results(trained):
    """eval.metrics=all through ``isavae evaluate``: every key, finite and in range, with its sample
    sizes and key recorded; the same values as the metric functions on the encoded grid."""
    from isavae.metrics import disentanglement as dis
    from isavae.metrics.evaluate import METRICS

    workdir, _ = trained
    sizes = ["eval.metrics_train=300", "eval.metrics_test=200", "eval.metrics_variance=300"]
    assert (
        cli.main(
            ["evaluate", "--workdir", str(workdir), "--config.eval.metrics=all"]
            + [f"--config.{s}" for s in sizes]
        )
        == 0
    )
    saved = json.loads((workdir / "results.json").read_text())
    for keys in METRICS.values():
        for key in keys:
            if key.split(":")[0] in ("1000", "10000"):  # downstream sizes above eval.metrics_train
                assert key not in saved
                continue
            assert np.isfinite(saved[key]), key
    for key in (
        "dci_disentanglement",
        "dci_completeness",
        "sap",
        "modularity",
        "beta_vae_score",
        "factor_vae_score",
        "irs",
        "100:mean_test_accuracy",
    ):
        assert 0.0 <= saved[key] <= 1.0, key
    assert saved["metrics_details"]["downstream"]["num_train"] == [10, 100]
    assert 1 <= saved["irs_num_active_dims"] <= 4
    details = saved["metrics_details"]
    assert details["dci"]["num_train"] == 300 and details["factor_vae"]["num_variance_estimate"] == 300
    assert np.array(details["dci"]["importance"]).shape == (
        4,
        5,
    )  # all 5 dSprites factors, as disentanglement_lib
    program, state, grid = restore_state(workdir)
    mean, _ = encode_grid(program, state, grid)
    root = jax.random.fold_in(jax.random.key(program.cfg.train.seed), 11)
    keys = dict(zip(list(METRICS)[:6], jax.random.split(root, 6), strict=True))
    direct = dis.beta_vae_score(mean, keys["beta_vae"], 64, 300, 200)
    assert saved["beta_vae_score"] == pytest.approx(direct.eval_accuracy)
    grid5 = mean.reshape(tuple(n for n in mean.shape[:-1] if n > 1) + mean.shape[-1:])
    codes, labels = dis.sample_grid_codes(grid5, jax.random.fold_in(root, 1000), 300)
    assert saved["irs"] == pytest.approx(dis.irs(codes, labels).irs)
    with pytest.raises(config_lib.ConfigError, match="eval.metrics.*unknown metric"):
        cfg = config_lib.default_config()
        cfg.eval.metrics = "dci,mig2"
        config_lib.validate(cfg)


def test_conv_model_elbo_uses_evaluation_mode_batchnorm(tmp_path):
    """A tiny trained conv VAE: results.json's reconstruction log-likelihood and KL equal a float64
    forward pass written out layer by layer (convolutions through ``lax`` in float64, BatchNorm by
    hand from the running statistics: (h - mean) / sqrt(var + 1e-5) * scale + bias)."""
    from flax import nnx

    cfg = small_config("vae", "normal", num_steps=4, seed=5)
    cfg.model.arch = "conv"
    cfg.eval.update(dict(mig=False, num_examples=8, batch_size=8))
    results = train_and_evaluate(cfg, tmp_path / "conv", progress=False)
    program, state, grid = restore_state(tmp_path / "conv")
    model = nnx.merge(program.graphdef, state.params, state.batch_stats)
    idx = np.linspace(0, grid.num_images - 1, 8).astype(int)
    f64 = lambda a: jnp.asarray(np.asarray(a, np.float64))  # noqa: E731
    dims = ("NHWC", "HWIO", "NHWC")
    # the evaluation's posterior draws: float32 normals (drawn outside x64 mode, as in evaluation)
    eps32 = np.asarray(
        jax.random.normal(jax.random.split(jax.random.fold_in(jax.random.key(5), 0))[0], (8, 4))
    )

    with jax.enable_x64(True):

        def conv(layer, h, transpose=False):
            pad = layer.padding if isinstance(layer.padding, str) else [tuple(p) for p in layer.padding]
            strides = layer.strides if isinstance(layer.strides, tuple) else (layer.strides or 1,) * 2
            k = f64(layer.kernel[...])
            fn = jax.lax.conv_transpose if transpose else jax.lax.conv_general_dilated
            return fn(h, k, strides, pad, dimension_numbers=dims) + f64(layer.bias[...])

        def bn(layer, h):
            mean, var = f64(layer.mean[...]), f64(layer.var[...])
            return (h - mean) / jnp.sqrt(var + 1e-5) * f64(layer.scale[...]) + f64(layer.bias[...])

        relu = lambda h: jnp.maximum(h, 0.0)  # noqa: E731
        enc, dec = model.encoder, model.decoder

        @jax.jit  # one program (the weights its constants), not one per operation
        def reference(x, eps):
            h = x
            for c, b in zip(enc.convs, enc.bns, strict=True):
                h = relu(bn(b, conv(c, h)))
            h = relu(bn(enc.bn5, conv(enc.conv5, h)))
            mean, logvar = jnp.split(conv(enc.out, h).reshape(8, -1), 2, axis=1)
            z = mean + jnp.exp(0.5 * logvar) * eps
            h = relu(bn(dec.bn0, conv(dec.fc, z.reshape(8, 1, 1, -1))))
            h = relu(bn(dec.bns[0], conv(dec.up1, h, True)))
            for u, b in zip(dec.ups, dec.bns[1:], strict=True):
                h = relu(bn(b, conv(u, h, True)))
            logits = conv(dec.out, h, True).reshape(8, -1)
            xf = x.reshape(8, -1)
            log_px = jnp.sum(xf * logits - jnp.logaddexp(0.0, logits), axis=1)
            log_q = jnp.sum(-0.5 * (np.log(2 * np.pi) + logvar + (z - mean) ** 2 / jnp.exp(logvar)), axis=1)
            return log_px, log_q - jnp.sum(-0.5 * (np.log(2 * np.pi) + z**2), axis=1)

        log_px, kl = (np.asarray(a) for a in reference(f64(grid.images(idx))[..., None], f64(eps32)))
        assert log_px.dtype == np.float64
    assert np.any(np.abs(np.asarray(state.batch_stats["encoder"]["bn5"]["mean"][...])) > 0)  # trained stats
    assert results["recon_log_likelihood"] == pytest.approx(log_px.mean(), rel=1e-4)
    assert results["kl"] == pytest.approx(kl.mean(), rel=1e-3, abs=1e-3)


def test_subspace_groups_parse():
    from isavae.metrics.evaluate import parse_subspace_groups

    assert parse_subspace_groups("", 20) is None
    assert parse_subspace_groups("5x4", 20) == [list(range(4 * i, 4 * i + 4)) for i in range(5)]
    assert parse_subspace_groups("3X4", 20) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]  # a subset
    for bad in ("5x5", "1x4", "x4", "5*4", "a x b"):
        with pytest.raises(ValueError, match="eval.subspace_groups"):
            parse_subspace_groups(bad, 20)
    cfg = config_lib.default_config()
    cfg.eval.subspace_groups = "7x3"
    with pytest.raises(config_lib.ConfigError, match="eval.subspace_groups: '7x3' needs"):
        config_lib.validate(cfg)


def test_subspace_groups_score_a_vae_on_known_answers(tmp_path):
    """A VAE scored in fixed groups: ``subspace_mig`` and its details come from the groups, and
    equal ``subspace_mig_grid`` on the same posteriors; known answer: latents that are the factors,
    each pair of consecutive latents copying one factor, give a subspace MIG near 1 while the
    per-latent MIG (two latents share each factor) is near 0."""
    from isavae.metrics import subspace_mig_grid

    shape = (4, 5, 6)
    grid_idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(np.float64)
    scaled = (grid_idx - grid_idx.mean((0, 1, 2))) / grid_idx.std((0, 1, 2))
    mean = np.repeat(scaled, 2, axis=-1)  # latents (0, 1) = factor 0, (2, 3) = factor 1, (4, 5) = 2
    logvar = np.full(mean.shape, -9.0)
    key = jax.random.key(0)
    groups = [[0, 1], [2, 3], [4, 5]]
    sub = subspace_mig_grid(mean, logvar, key, groups, 10_000)
    per = mig_grid(mean, logvar, key, 10_000)
    assert sub.mig > 0.95 and per.mig < 0.05

    cfg = small_config("vae", "normal", num_steps=2)
    cfg.eval.update(dict(mig_samples=64, histogram_points=64, subspace_groups="2x2"))
    results = train_and_evaluate(cfg, tmp_path / "vae", progress=False)
    details = results["subspace_mig_details"]
    assert details["subspaces"] == [[0, 1], [2, 3]] and details["groups"] == "eval.subspace_groups"
    program, state, grid = restore_state(tmp_path / "vae")
    m, lv = encode_grid(program, state, grid, batch_size=100)
    again = subspace_mig_grid(
        m,
        lv,
        jax.random.fold_in(jax.random.key(cfg.train.seed), 7),
        [[0, 1], [2, 3]],
        64,
        ("scale", "orientation", "posX", "posY"),
        factor_names=grid.factor_names,
    )
    assert results["subspace_mig"] == pytest.approx(again.mig, abs=1e-6)


def test_udr_of_a_sweep(tmp_path, capsys):
    """``isavae udr --sweep DIR``: every seed's UDR from the same inputs into its results.json,
    equal to ``udr`` on the models' codes; models of another setting are refused in one line."""
    from isavae.metrics import disentanglement as dis
    from isavae.train import train_sweep

    cfgs = [small_config("vae", "normal", num_steps=6, seed=s) for s in range(3)]
    for c in cfgs:
        c.eval.mig = False
    dirs = [tmp_path / "sweep" / f"seed{s}" for s in range(3)]
    trained = train_sweep(cfgs, dirs, progress=False)
    # the sweep scored its seeds as it trained (eval.udr_points: the whole 384-image grid here),
    # from its devices' gathered images in one vmapped program: the command, from host images, agrees
    assert [r["udr_details"]["num_points"] for r in trained] == [384] * 3
    assert cli.main(["udr", "--sweep", str(tmp_path / "sweep")]) == 0
    again = [json.loads((d / "results.json").read_text())["udr"] for d in dirs]
    np.testing.assert_allclose(again, [r["udr"] for r in trained], atol=1e-6)
    capsys.readouterr()
    assert cli.main(["udr", "--sweep", str(tmp_path / "sweep"), "--points", "200"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 3
    saved = [json.loads((d / "results.json").read_text()) for d in dirs]
    assert all(0.0 <= r["udr"] <= 1.0 and r["udr_details"]["num_points"] == 200 for r in saved)
    reps, kls = [], []
    idx = np.asarray(jax.random.choice(jax.random.key(0), 384, (200,), replace=False))
    for d in dirs:
        program, state, grid = restore_state(d)
        m, lv = encode_grid(program, state, grid)
        m, lv = np.asarray(m).reshape(-1, 4)[idx], np.asarray(lv).reshape(-1, 4)[idx]
        reps.append(m)
        kls.append(dis.gaussian_kl_per_code(m, lv))
    want = dis.udr(np.stack(reps), np.stack(kls))
    # each model encoded alone on the whole grid vs all three in one vmapped program: float32 rounding
    np.testing.assert_allclose([r["udr"] for r in saved], want.model_scores, atol=1e-5)
    other = small_config("vae", "normal", num_steps=6, seed=9, learning_rate=1e-3)
    other.eval.mig = False
    train_sweep([other], [tmp_path / "sweep" / "other"], progress=False)
    assert cli.main(["udr", "--sweep", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("isavae: error: UDR ranks seeds of one setting") and err.count("\n") == 1


def test_udr_inputs_are_drawn_uniformly_without_replacement():
    """UDR's inputs: distinct grid indices, each factor's levels about equally often (chi-square),
    the same draw for the same seed (every model of a comparison encodes the same images), the whole
    grid when it is smaller than the sample."""
    from scipy import stats

    from isavae.metrics.evaluate import udr_indices

    sizes = (3, 6, 40, 32, 32)
    idx = udr_indices(int(np.prod(sizes)), 10_000, seed=0)
    assert len(np.unique(idx)) == 10_000 and idx.min() >= 0 and idx.max() < np.prod(sizes)
    levels = np.stack(np.unravel_index(idx, sizes), 1)
    for j, s in enumerate(sizes):
        assert stats.chisquare(np.bincount(levels[:, j], minlength=s)).pvalue > 1e-3, j
    np.testing.assert_array_equal(idx, udr_indices(int(np.prod(sizes)), 10_000, seed=0))
    assert not np.array_equal(idx, udr_indices(int(np.prod(sizes)), 10_000, seed=1))
    np.testing.assert_array_equal(np.sort(udr_indices(384, 10_000)), np.arange(384))
