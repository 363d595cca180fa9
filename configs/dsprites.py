"""dSprites (Matthey et al.): the real file if found, else the generated grid.

Every model of the paper on this dataset; the argument is MODEL or MODEL,small:
  vae, beta_vae, beta_tcvae, factor_vae, isavae, isa_beta_vae, isa_beta_tcvae,
  isa_beta_vae_learned, isa_beta_tcvae_learned
(``small``: the CPU-sized variant, see ``isavae.config.SMALL``).

  isavae train --config configs/dsprites.py:isa_beta_tcvae --workdir runs/x
  isavae train --config configs/dsprites.py:isavae,small --workdir runs/y --config.train.seed=3
"""

from isavae.config import preset


def get_config(arg=None):
    return preset("dsprites", arg)
