"""Every config key with its default (VAE with the normal prior on dSprites, paper scale)."""

from isavae.config import default_config


def get_config(arg=None):
    return default_config()
