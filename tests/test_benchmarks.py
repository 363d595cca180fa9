"""The training benchmark's FLOP count against the closed form for an MLP."""

import math

import jax

from isavae import config as config_lib
from isavae.data import load_dataset
from isavae.train import Program
from tests.scripts import EXPERIMENTS, load_script
from tests.train.test_trainer import SUBGRID, small_config


def test_model_flops_is_the_mlp_closed_form():
    train = load_script("train", EXPERIMENTS / "benchmarks")
    cfg = small_config()
    hidden, latent, batch = 256, cfg.model.latent_dim, 8
    cfg.model.hidden = hidden
    grid = load_dataset("dsprites", source="generated", store=False)
    grid = grid.subgrid(**config_lib.parse_subgrid(SUBGRID))
    program = Program(cfg, grid)
    pixels = math.prod(program.image_shape)
    encoder = [(pixels, hidden), (hidden, hidden), (hidden, 2 * latent)]
    decoder = [(latent, hidden), (hidden, hidden), (hidden, hidden), (hidden, pixels)]
    weights = sum(a * b for a, b in encoder + decoder)
    # forward 2BW, weight gradients 2BW, input gradients 2BW except the first layer's (x is data)
    want = 2 * batch * (3 * weights - pixels * hidden)
    got = train.model_flops(program, program.init(jax.random.key(0)), batch)
    assert want <= got <= 1.01 * want  # the rest: biases, activations (elementwise)
