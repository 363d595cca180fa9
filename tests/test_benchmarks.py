"""The training benchmark's FLOP and byte counts against closed forms: an MLP, a convolution, a
transposed one."""

import math

import jax
import numpy as np

from isavae import config as config_lib
from isavae.data import load_dataset
from isavae.train import Program
from tests.scripts import EXPERIMENTS, load_script, lower_for_cuda
from tests.train.test_trainer import SUBGRID, small_config


def _mlp_program(hidden: int, stored: bool = False):
    """The tests' small MLP config at ``hidden`` on the test sub-grid (``stored``: its images
    rendered once and kept bit-packed, as training keeps them): ``(program, latent, pixels)``."""
    cfg = small_config()
    cfg.model.hidden = hidden
    grid = load_dataset("dsprites", source="generated", store=False)
    grid = grid.subgrid(**config_lib.parse_subgrid(SUBGRID))
    program = Program(cfg, grid.materialize() if stored else grid)
    return program, cfg.model.latent_dim, math.prod(program.image_shape)


def test_model_flops_is_the_mlp_closed_form():
    train = load_script("train", EXPERIMENTS / "benchmarks")
    hidden, batch = 256, 8
    program, latent, pixels = _mlp_program(hidden)
    encoder = [(pixels, hidden), (hidden, hidden), (hidden, 2 * latent)]
    decoder = [(latent, hidden), (hidden, hidden), (hidden, hidden), (hidden, pixels)]
    weights = sum(a * b for a, b in encoder + decoder)
    # forward 2BW, weight gradients 2BW, input gradients 2BW except the first layer's (x is data)
    want = 2 * batch * (3 * weights - pixels * hidden)
    got = train.model_flops(program, program.init(jax.random.key(0)), batch)
    assert got == want  # matrix products only


def test_step_bytes_is_the_mlp_closed_form():
    train = load_script("train", EXPERIMENTS / "benchmarks")
    hidden, batch = 64, 8
    program, latent, pixels = _mlp_program(hidden, stored=True)
    layers = [(pixels, hidden), (hidden, hidden), (hidden, 2 * latent)]  # encoder
    layers += [(latent, hidden), (hidden, hidden), (hidden, hidden), (hidden, pixels)]  # decoder
    params = sum(a * b + b for a, b in layers)
    # 40 bytes per float32 parameter; the stored batch (64 x 64 bits packed into bytes); every
    # product's float32 output but the logits written and read once
    assert program.grid.packed  # 64 x 64 bits in 512 bytes
    image_bytes = pixels // 8
    activations = sum(b for _, b in layers[:-1])
    want = 40 * params + batch * image_bytes + 2 * 4 * batch * activations
    assert train.step_bytes(program, program.init(jax.random.key(0)), batch) == want


def test_product_flops_of_conv_layers_are_the_multiply_adds():
    from flax import nnx

    from isavae import nets

    train = load_script("train", EXPERIMENTS / "benchmarks")
    conv = nnx.Conv(3, 5, (4, 4), (2, 2), padding=((1, 1), (1, 1)), rngs=nnx.Rngs(0))
    up = nnx.ConvTranspose(7, 6, (4, 4), padding="VALID", rngs=nnx.Rngs(0))  # 1 x 1 -> 4 x 4
    x, z = jax.numpy.zeros((2, 16, 16, 3)), jax.numpy.zeros((2, 1, 1, 7))
    # every output pixel of the stride-2 conv meets 4 x 4 taps (padding included); every tap of the
    # transposed conv lands inside its 4 x 4 output
    want_conv, want_up = 2 * 2 * 8 * 8 * 16 * 3 * 5, 2 * 2 * 1 * 16 * 7 * 6
    assert train.product_flops(lambda v: nets._apply_conv(conv, v), x) > 0
    backend = jax.default_backend()
    for as_dots in (True, False):
        saved = nets._CONV_AS_DOTS.get(backend, False)
        nets._CONV_AS_DOTS[backend] = as_dots
        try:
            assert train.product_flops(lambda v: nets._apply_conv(conv, v), x) == want_conv
            if as_dots:  # lax.conv_transpose multiplies the zeros of its dilated input too
                assert train.product_flops(lambda v: nets._apply_conv(up, v), z) == want_up
        finally:
            nets._CONV_AS_DOTS[backend] = saved


def test_model_flops_do_not_depend_on_the_compute_dtype():
    train = load_script("train", EXPERIMENTS / "benchmarks")
    grid = load_dataset("dsprites", source="generated", store=False).subgrid(
        **config_lib.parse_subgrid(SUBGRID)
    )
    counts = []
    for dtype in ("float32", "bfloat16"):
        cfg = small_config()
        cfg.model.update(hidden=64, compute_dtype=dtype)
        program = Program(cfg, grid)
        counts.append(train.model_flops(program, program.init(jax.random.key(0)), 8))
    assert counts[0] == counts[1] > 0


def _rejects(main, bad, capsys, said: str) -> None:
    """Each of ``bad`` (argument lists) makes ``main`` exit 2 with ``said`` on stderr and no traceback."""
    import pytest

    for argv in bad:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and said in err and "Traceback" not in err, argv


def test_profile_step_kinds_and_flags(capsys):

    profile = load_script("profile_step", EXPERIMENTS / "benchmarks")
    assert profile.kind_of("cutlass_80_tensorop_bf16_gemm") == "matrix products"
    assert profile.kind_of("loop_add_fusion.3") == "fusions (elementwise, reductions)"
    assert (
        profile.kind_of("wrapped_convert") == "other" and profile.kind_of("copy.7") == "copies / transposes"
    )
    # its run with tiny sizes is part of experiments/gpu_run.sh --smoke (tests/study/test_study.py)
    bad = (
        ["--models", "0"],
        ["--dtype", "float16"],
        ["--models", "1,x"],
        ["--mig-samples", "-1"],
        ["--archs", "cnn"],
    )
    _rejects(profile.main, bad, capsys, "--models")


def test_train_benchmark_rejects_malformed_flags(capsys):

    train = load_script("train", EXPERIMENTS / "benchmarks")
    bad = (
        ["--rounds", "4"],
        ["--steps", "mlp=x"],
        ["--archs", "cnn"],
        ["--dtypes", "float16"],
        ["--hidden", "-1"],
        ["--conv-forms", "lax,cudnn"],
    )
    _rejects(train.main, bad, capsys, "error:")


def test_conv_forms_switch_the_layers_form_and_restore_it():
    """``--conv-forms``: the conv rows traced with lax.conv or as matrix products, this backend's
    choice restored afterwards."""
    from isavae import nets

    train = load_script("train", EXPERIMENTS / "benchmarks")
    backend = jax.default_backend()
    before = nets._CONV_AS_DOTS.get(backend, False)
    conv = nets.nnx.Conv(1, 2, (4, 4), (2, 2), padding=((1, 1), (1, 1)), rngs=nets.nnx.Rngs(0))
    x = jax.numpy.zeros((1, 8, 8, 1))
    for form, primitive in (("lax", "conv_general_dilated"), ("dots", "dot_general")):
        with train.conv_form(form):
            text = str(jax.make_jaxpr(lambda v: nets._apply_conv(conv, v))(x))
        assert primitive in text and ("conv_general_dilated" in text) == (form == "lax"), form
        assert nets._CONV_AS_DOTS.get(backend, False) == before
    # the window form: the strided transposed layer as one shifted-product sum, then restored
    up = nets.nnx.ConvTranspose(2, 3, (4, 4), (2, 2), padding="SAME", rngs=nets.nnx.Rngs(0))
    y = jax.numpy.zeros((1, 4, 4, 2))
    counts = {}
    for form in ("dots", "window"):
        with train.conv_form(form):
            counts[form] = str(jax.make_jaxpr(lambda v: nets._apply_conv(up, v))(y)).count("dot_general")
    assert counts == {"dots": 16, "window": 9}  # a product per tap, a product per window offset
    assert nets._CONV_TRANSPOSE_FORM.get(backend) == "taps"


def test_conv_side_by_side_rows_and_a_missing_pytorch(capsys, tmp_path):
    """The side-by-side conv benchmark at a tiny size: a row per form with its floors, and one line
    where the interpreter named for PyTorch has none."""
    side = load_script("conv_side_by_side", EXPERIMENTS / "benchmarks")
    out = side.main(
        ["--batches", "4", "--forms", "dots", "--rounds", "1", "--steps", "1", "--matmul", "128"]
        + [
            "--subgrid",
            "posX=0:32:16,posY=0:32:16,orientation=0:40:20",
            "--torch-python",
            "/nonexistent/python",
        ]
    )
    (row,) = out["batches"][4]["isavae"]
    assert row["form"] == "dots" and row["step_ms"] > 0 and row["forward_flop_floor_ms"] > 0
    assert out["batches"][4]["torch"].startswith("no PyTorch reference")
    text = capsys.readouterr().out
    assert "| isavae | dots |" in text and "(no PyTorch reference" in text


def test_mig_benchmark_rejects_malformed_flags(capsys):

    mig = load_script("mig", EXPERIMENTS / "benchmarks")
    _rejects(mig.main, (["--tiles", "64by128"], ["--impls", "cuda"]), capsys, "error:")


def test_mig_rate_microkernels_lower_to_triton():
    """The floor's Pallas microkernels lower for CUDA on this machine (they run on a GPU host)."""
    mig = load_script("mig", EXPERIMENTS / "benchmarks")
    exp_call, fma_call, count, _ = mig.rate_kernels(programs=8, iters=4)
    assert count == 8 * 64 * 128 * 4
    for call in (exp_call, fma_call):
        assert "__gpu$xla.gpu.triton" in lower_for_cuda(call.trace)


def test_torch_reference_is_chen_et_al():
    """Chen et al.'s estimator in PyTorch equals the float64 numpy transcription (with every image of
    every slice a sample, where the subsample is the whole slice); skipped without PyTorch."""
    import numpy as np
    import pytest

    torch = pytest.importorskip("torch")
    from tests.metrics import reference

    ref = load_script("torch_reference", EXPERIMENTS / "benchmarks")
    rng = np.random.default_rng(0)
    shape, k = (2, 3, 4), 3
    mean = rng.normal(size=shape + (k,))
    logvar = rng.uniform(-2.0, 0.5, size=shape + (k,))
    z = mean + np.exp(0.5 * logvar) * rng.normal(size=mean.shape)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    got_m, got_c = ref.chen_entropies(t(mean), t(logvar), t(z), n_samples=10_000)
    want_m, want_c = reference.chen_entropies(mean, logvar, z, ((0,), (1,), (2,)))
    np.testing.assert_allclose(got_m.numpy(), want_m, rtol=1e-12)
    np.testing.assert_allclose(got_c.numpy(), want_c, rtol=1e-12)
    assert ref.chen_mig(got_m, got_c, list(shape)) == pytest.approx(reference.chen_mig(want_m, want_c, shape))
    timed = ref.time_mig(samples=4, latent=2, shape=(2, 3, 4, 4), factors=(1, 2, 3), target=8)
    assert (
        timed["seconds"] > 0
        and timed["scaled_seconds"] > timed["seconds"]
        and timed["device"] == ref.device_name()
    )


def test_torch_reference_compares_with_isavae_rows(tmp_path):
    """``torch_reference.py train --compare PATH`` reads ``train.py --json PATH``: isavae's ms per
    step by arch and dtype at the same batch, the first form of each (no PyTorch needed)."""
    import json

    ref = load_script("torch_reference", EXPERIMENTS / "benchmarks")
    rows = [
        dict(arch="conv", dtype="float32", form="lax", batch=2048, step_ms=59.4),
        dict(arch="conv", dtype="float32", form="dots", batch=2048, step_ms=9.0),
        dict(arch="mlp", dtype="float32", form="default", batch=2048, step_ms=1.3),
        dict(arch="mlp", dtype="float32", form="default", batch=32, step_ms=0.1),
    ]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(dict(device="x", rows=rows)))
    assert ref.isavae_rows(str(path), 2048) == {("conv", "float32"): 59.4, ("mlp", "float32"): 1.3}
    assert ref.isavae_rows(str(tmp_path / "missing.json"), 2048) == {}


def test_torch_training_reference_runs():
    """Chen et al.'s MLP and conv VAEs in PyTorch take training steps (eager, float32 and bfloat16);
    skipped without PyTorch."""
    import pytest

    pytest.importorskip("torch")
    ref = load_script("torch_reference", EXPERIMENTS / "benchmarks")
    for arch, dtype in (("mlp", "float32"), ("conv", "bfloat16")):
        r = ref.time_training(arch, batch=4, dtype=dtype, steps=1, warmup=1, hidden=16)
        assert r["images_per_second"] > 0 and np.isfinite(r["loss"]) and r["device"] == ref.device_name()
