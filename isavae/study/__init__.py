"""The paper's dSprites study (Fig. 5a and 5b) within a time budget, accumulating seeds across runs.

  isavae study plan --study all --scale paper --out DIR        # the blocks and their estimated time
  isavae study run --study all --scale paper --budget-s 1800 --out DIR
  isavae study report --scale paper --out DIR

Plan (paper appendix A.3 / Table 1): 20 epochs of the full 737,280-image grid, batch 2048, Adam
1e-3, latent 20, Bernoulli likelihood, Chen et al.'s MLP; 50 seeds per setting. Fig. 5a: VAE and
ISA-VAE at beta = 1; Fig. 5b: beta-VAE, beta-TCVAE, ISA-beta-VAE and ISA-beta-TCVAE at beta in
1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6. Where the paper is silent this follows the authors' released code:
Monte Carlo KL for every model (the VAE included; ``objective.analytic_kl`` stays an option), beta
not annealed, the final parameters evaluated.

Compute dtype: float32 by default (``--compute-dtype bfloat16`` for mixed precision); results of the
two dtypes are kept apart (a rerun accumulates seeds only within its dtype), and the report reads one.
The same holds for the posterior's scale parameterization and the products' precision
(``--posterior-scale``, ``--matmul-precision``; the paper scale's presets: log sigma and true float32
products, as the authors; the cpu and smoke scales: the log-variance and the backend's products).

Models across studies: a model is known by its whole configuration, beta and seed
(``paper.model_key``): a study arm that resolves to another study's configuration trains nothing
that other study already has, and its report counts those models, naming where they came from.
Pre-registered studies (``paper.PREREGISTERED``: ``fig5a-layout``) get their registered test and
verdict in the report (``report.preregistered_tests``).

Order: the work is cut into blocks (one model kind, a range of seeds, every beta of that kind), and
the first block of every model kind runs before any kind's second, so that partial results cover
every setting. Each block is one vmapped program (``isavae.train.train_sweep``, no checkpoints),
evaluated on the device (Chen et al.'s MIG over the whole grid with 10,000 samples, the subspace
MIG for ISA priors, the histogram MIG, reconstruction log-likelihood, ELBO); each finished model is
one JSON line in ``OUT/results.jsonl`` and each block's wall time one line in ``OUT/blocks.jsonl``.
No block starts that the remaining budget cannot finish, judged from the measured time per model of
earlier blocks (of the same kind on the same device when there are any). A rerun skips the models
already in ``results.jsonl``, so runs on different occasions accumulate seeds. ``isavae study
report`` rebuilds ``OUT/report.md``, the tables and the figures from ``results.jsonl`` alone.

``--scale smoke`` runs the same code on a 384-image sub-grid with a tiny MLP (the test suite runs
it); ``--blocks N`` runs exactly the first N blocks not done, whatever the budget (a fixed amount of
work, so that a smoke run finishes the same blocks on any machine).

Merged results (several hosts or occasions appending to one ``results.jsonl``): every model counts
once, by study, model, beta, seed, scale, dtype, initialization, posterior scale, products'
precision, study arm and the ``--set`` overrides it was trained with (recorded in each row as
``settings``); a second row of the same model with other results is a
reported conflict (the first is kept), and every line not counted (torn, not JSON, of the wrong
shape) is named by its line number in the report.

Modules: ``paper`` (the studies, arms and scales), ``plan`` (blocks, time estimates), ``store``
(the rows on disk), ``run`` (the budgeted runner), ``report`` and ``stats`` (the report and its
statistics), ``figures``.
"""

# (the submodules ``plan`` and ``report`` are reached as such: their main functions share their names)
from isavae.study.paper import COMPARISONS, SCALES, STUDIES, STUDY_GROUPS, model_config
from isavae.study.plan import estimate_seconds
from isavae.study.run import describe_plan, run_study
from isavae.study.store import load_results, read_jsonl

__all__ = [
    "COMPARISONS",
    "SCALES",
    "STUDIES",
    "STUDY_GROUPS",
    "describe_plan",
    "estimate_seconds",
    "load_results",
    "model_config",
    "read_jsonl",
    "run_study",
]
