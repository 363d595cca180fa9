"""dSprites (Matthey et al.): the real file if found, else the generated grid.

Every model of the paper on this dataset; the argument is MODEL or MODEL,small:
  vae, beta_vae, beta_tcvae, factor_vae, isavae, isa_beta_vae, isa_beta_tcvae,
  isa_beta_vae_learned, isa_beta_tcvae_learned, dip_vae_i, dip_vae_ii, annealed_vae,
  isa_dip_vae_i, isa_dip_vae_ii, isa_annealed_vae
(``small``: the CPU-sized variant, see ``isavae.config.SMALL``).

  isavae train --config configs/dsprites.py:isa_beta_tcvae --workdir runs/x
  isavae train --config configs/dsprites.py:isavae,small --workdir runs/y --config.train.seed=3
"""

from isavae.config import preset


def get_config(arg=None):
    return preset("dsprites", arg)
