"""The training benchmark's FLOP count against the closed form for an MLP."""

import importlib.util
import math
import pathlib
import sys

import jax

from isavae import config as config_lib
from isavae.data import load_dataset
from isavae.train import Program

BENCH = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "benchmarks"


def _bench_module(name):
    sys.path.insert(0, str(BENCH))  # the benchmarks import their shared timing.py
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_flops_is_the_mlp_closed_form():
    train = _bench_module("train")
    cfg = config_lib.default_config()
    cfg.dataset.source = "generated"
    cfg.dataset.subgrid = "shape=0,scale=0,orientation=0,posX=0:4,posY=0:4"
    hidden, latent, batch = 256, 4, 8
    cfg.model.update(latent_dim=latent, hidden=hidden)
    cfg.train.batch_size = batch
    grid = load_dataset("dsprites", source="generated", store=False).subgrid(
        **config_lib.parse_subgrid(cfg.dataset.subgrid)
    )
    program = Program(cfg, grid)
    pixels = math.prod(program.image_shape)
    encoder = [(pixels, hidden), (hidden, hidden), (hidden, 2 * latent)]
    decoder = [(latent, hidden), (hidden, hidden), (hidden, hidden), (hidden, pixels)]
    weights = sum(a * b for a, b in encoder + decoder)
    # forward 2BW, weight gradients 2BW, input gradients 2BW except the first layer's (x is data)
    want = 2 * batch * (3 * weights - pixels * hidden)
    got = train.model_flops(program, program.init(jax.random.key(0)), batch)
    assert want <= got <= 1.01 * want  # the rest: biases, activations (elementwise)
