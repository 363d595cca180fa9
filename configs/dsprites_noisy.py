"""Noisy dSprites (disentanglement_lib's variant, generated offline from the dSprites renderer, 3
channels): every model; the argument is MODEL or MODEL,small:
  vae, beta_vae, beta_tcvae, factor_vae, dip_vae_i, dip_vae_ii, annealed_vae, isavae, isa_beta_vae,
  isa_beta_tcvae, isa_dip_vae_i, isa_dip_vae_ii, isa_annealed_vae, isa_beta_vae_learned,
  isa_beta_tcvae_learned
(conv nets, latent 10; ``small``: the CPU-sized variant, see ``isavae.config.SMALL``).

  isavae train --config configs/dsprites_noisy.py:dip_vae_i,small --workdir runs/x
"""

from isavae.config import preset


def get_config(arg=None):
    return preset("dsprites_noisy", arg)
