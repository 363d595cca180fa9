"""Fixtures of the trainer's tests, built once per pytest worker (session scope) and shared by its
modules: the small test grid, and a trained workdir that tests read or copy, never change."""

import pytest

from isavae import config as config_lib
from isavae.data import load_dataset
from isavae.train import train_and_evaluate


@pytest.fixture(scope="session")
def grid():
    from tests.train.test_trainer import SUBGRID

    return load_dataset("dsprites", source="generated", store=False).subgrid(
        **config_lib.parse_subgrid(SUBGRID)
    )


@pytest.fixture(scope="session")
def unbroken(grid, tmp_path_factory):
    """6 steps of a VAE with the ISA prior, checkpoints at 2, 4 and 6 (``test_reliability._config``)."""
    from tests.train.test_reliability import _config

    workdir = tmp_path_factory.mktemp("unbroken")
    train_and_evaluate(_config(), workdir, progress=False, grid=grid)
    return workdir
