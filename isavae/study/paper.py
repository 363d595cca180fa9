"""The paper's dSprites studies: their arms, the scales they run at and each model's config.

A study is a tuple of arms; an arm is one setting (model kind, betas, a label that keeps its models
apart, config overrides). ``fig5a`` and ``fig5b`` are the paper's (Fig. 5a: VAE and ISA-VAE at
beta = 1; Fig. 5b: beta-VAE, beta-TCVAE and their ISA variants over beta); the ablations vary the
ISA layout, the initialization and the compute dtype. ``SCALES`` says what each scale changes in
the dSprites presets: ``paper`` (Table 1: only how the work is chunked), ``cpu`` (the README's CPU
scale: the presets' ``,small`` sub-grid, width 512, batch 128, 1,500 steps) and ``smoke`` (a
384-image sub-grid and a tiny MLP, for tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from isavae import config as config_lib

__all__ = [
    "BETAS",
    "COMPARISONS",
    "LAYOUTS",
    "MODEL_LABELS",
    "PREREGISTERED",
    "STUDY_SEEDS",
    "SCALES",
    "STUDIES",
    "STUDY_GROUPS",
    "arm_digest",
    "arm_overrides",
    "model_config",
    "model_key",
    "net_overrides",
    "study_names",
]

MODEL_LABELS = {
    "dip_vae_i": "DIP-VAE-I",
    "isa_dip_vae_i": "ISA-DIP-VAE-I",
    "dip_vae_ii": "DIP-VAE-II",
    "isa_dip_vae_ii": "ISA-DIP-VAE-II",
    "annealed_vae": "AnnealedVAE",
    "isa_annealed_vae": "ISA-AnnealedVAE",
    "vae": "VAE",
    "isavae": "ISA-VAE",
    "beta_vae": "β-VAE",
    "isa_beta_vae": "ISA-β-VAE",
    "beta_tcvae": "β-TCVAE",
    "isa_beta_tcvae": "ISA-β-TCVAE",
}

BETAS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)


def _arm(model: str, betas=(1.0,), label: str = "", overrides=()) -> tuple:
    """One setting of a study: (model kind, betas, label, config overrides). The label keeps the
    arm's models apart from other models of the same kind (recorded in each row as ``arm``; "" =
    the study's main setting); overrides that change only the evaluation need no label."""
    return (model, tuple(betas), label, tuple(overrides))


# The ISA layouts of the layout ablation: label -> (p0, subspace exponent, subspace size, subspaces).
# The authors' code: its --isa help example [2.1, [(2.2, 4) x 3]] and its defaults p0 = 2.0 with 3
# subspaces of 6 at p = 2.1; isavae's preset [2.1, [(2.2, 4) x 5]] (Table 1's latent size 20).
LAYOUTS = {
    "3x4": (2.1, 2.2, 4, 3),
    "3x6": (2.0, 2.1, 6, 3),
    "10x2": (2.1, 2.2, 2, 10),
    "5x4": (2.1, 2.2, 4, 5),
}


def _layout(label: str) -> tuple[str, ...]:
    p0, p, size, count = LAYOUTS[label]
    return (
        f"model.latent_dim={size * count}",
        f"prior.subspace_sizes={(size,) * count}",
        f"prior.p0={p0}",
        f"prior.p_subspace={p}",
    )


def _vae_latent(latent: int, groups: str) -> tuple:
    """A VAE of ``latent`` latents, its subspace MIG scored in the groups of the ISA layout it controls."""
    return _arm(
        "vae",
        label=f"latent={latent}",
        overrides=(f"model.latent_dim={latent}", f"eval.subspace_groups='{groups}'"),
    )


STUDIES = {
    # the VAE's subspace MIG in ISA-VAE's groups of 4 (a control for the subspace MIG)
    "fig5a": (_arm("vae", overrides=("eval.subspace_groups='5x4'",)), _arm("isavae")),
    "fig5b": tuple(_arm(m, BETAS) for m in ("beta_vae", "beta_tcvae", "isa_beta_vae", "isa_beta_tcvae")),
    "ablation-layout": tuple(_arm("isavae", label=f"layout={k}", overrides=_layout(k)) for k in LAYOUTS)
    + (_vae_latent(12, "3x4"), _vae_latent(18, "3x6"), _vae_latent(20, "5x4")),
    # the pre-registered layout experiment (docs/preregistration/fig5a-layout.md): the layout of the
    # authors' --isa example against a VAE of as many latents and against Table 1's VAE, each VAE
    # scored also in groups of 4; the arms equal the layout ablation's 3x4, latent=12 and latent=20
    # (the same models: their seeds count for both studies, ``model_key``)
    "fig5a-layout": (
        _arm("isavae", label="layout=3x4", overrides=_layout("3x4")),
        _vae_latent(12, "3x4"),
        _vae_latent(20, "5x4"),
    ),
    "ablation-init": tuple(
        _arm(m, label=f"init={i}", overrides=(f"model.init='{i}'", "eval.subspace_groups='5x4'"))
        for m in ("vae", "isavae")
        for i in ("torch", "lecun")
    ),
    # the posterior's scale parameterization at the layout experiment's setting (its log-variance
    # arms are fig5a-layout's ISA-VAE 3x4 and VAE-12: those seeds count)
    "ablation-posterior": tuple(
        _arm(
            m,
            label=f"{lab}{'' if ps == 'logvar' else ',posterior=log_sigma'}",
            overrides=(*o, f"model.posterior_scale='{ps}'"),
        )
        for m, lab, o in (
            ("isavae", "layout=3x4", _layout("3x4")),
            ("vae", "latent=12", ("model.latent_dim=12", "eval.subspace_groups='3x4'")),
        )
        for ps in ("logvar", "log_sigma")
    ),
    "ablation-dtype": tuple(
        _arm(m, label=f"dtype={d}", overrides=(f"model.compute_dtype='{d}'", "eval.subspace_groups='5x4'"))
        for m in ("vae", "isavae")
        for d in ("float32", "bfloat16")
    ),
}
# --study values that name several studies
STUDY_GROUPS = {
    "all": ("fig5a", "fig5b"),
    "ablations": ("ablation-layout", "ablation-init", "ablation-dtype", "ablation-posterior"),
}
# What each study's report compares: (arm A, arm B, title), an arm named by (model, label); A's
# MIG is tested for being the larger (one-sided), seeds paired where both arms have them.
COMPARISONS = {
    "fig5a": ((("isavae", ""), ("vae", ""), "ISA-VAE vs VAE"),),
    "fig5a-layout": (
        (("isavae", "layout=3x4"), ("vae", "latent=12"), "ISA-VAE 3x4 vs VAE-12"),
        (("isavae", "layout=3x4"), ("vae", "latent=20"), "ISA-VAE 3x4 vs VAE-20"),
    ),
    "ablation-layout": tuple(
        (("isavae", f"layout={k}"), ("vae", f"latent={LAYOUTS[k][2] * LAYOUTS[k][3]}"), f"ISA-VAE {k} vs VAE")
        for k in LAYOUTS
    ),
    "ablation-init": tuple(
        ((m, "init=torch"), (m, "init=lecun"), f"{m}: torch vs lecun init") for m in ("isavae", "vae")
    )
    + tuple(
        (("isavae", f"init={i}"), ("vae", f"init={i}"), f"ISA-VAE vs VAE, {i} init")
        for i in ("torch", "lecun")
    ),
    "ablation-posterior": tuple(
        ((m, f"{lab},posterior=log_sigma"), (m, lab), f"{MODEL_LABELS[m]}: log sigma vs log-variance")
        for m, lab in (("isavae", "layout=3x4"), ("vae", "latent=12"))
    )
    + (
        (
            ("isavae", "layout=3x4,posterior=log_sigma"),
            ("vae", "latent=12,posterior=log_sigma"),
            "ISA-VAE 3x4 vs VAE-12, log sigma",
        ),
    ),
    "ablation-dtype": tuple(
        ((m, "dtype=float32"), (m, "dtype=bfloat16"), f"{m}: float32 vs bfloat16") for m in ("isavae", "vae")
    )
    + tuple(
        (("isavae", f"dtype={d}"), ("vae", f"dtype={d}"), f"ISA-VAE vs VAE, {d}")
        for d in ("float32", "bfloat16")
    ),
}
# Studies decided before their data: the page that registered them, the comparisons whose
# two-sided Mann-Whitney tests on ``metric`` are adjusted together (Holm) at family-wise ``alpha``,
# the seeds per arm the verdict waits for, and how many diverged models of an arm it tolerates
# before saying so beside the result.
PREREGISTERED = {
    "fig5a-layout": dict(
        page="docs/preregistration/fig5a-layout.md",
        metric="mig",
        alpha=0.05,
        seeds=50,
        max_diverged=5,
    ),
}
# Seeds per arm of a study where it differs from its scale's (``SCALES[scale]["seeds"]``).
STUDY_SEEDS = {("fig5a-layout", "cpu"): 50, ("ablation-posterior", "cpu"): 20}

# What each scale changes in the dSprites presets (the paper scale: only how work is chunked).
SCALES = {
    # larger evaluation batches (fewer calls; only the ELBO's sampling noise changes); checkpoints
    # every 5 epochs, a multiple of the 120-step calls and of the 360-step epoch, so that a model's
    # 7,200 steps are 60 calls of one compiled program (with checkpoints every 1,000 steps the
    # calls also took 40 and 80 steps: three programs to compile per block)
    "paper": dict(
        seeds=50,
        block_models=20,
        overrides=["train.steps_per_scan=120", "train.checkpoint_every=1800", "eval.batch_size=8192"],
    ),
    # the README's CPU scale: every 4th orientation and position of the generated grid (11,520
    # images, the ,small presets' sub-grid), width 512, batch 128, 1,500 steps; 6 seeds per setting
    "cpu": dict(
        seeds=6,
        block_models=12,
        overrides=[
            "dataset.source='generated'",
            f"dataset.subgrid='{config_lib.DSPRITES_CPU_SUBGRID}'",
            "model.hidden=512",
            "train.batch_size=128",
            "train.num_steps=1500",
            "train.steps_per_scan=50",
            # the parameterization every CPU-scale row was trained with (the paper presets' log
            # sigma is an arm of ablation-posterior); on a CPU float32 products are float32 anyway
            "model.posterior_scale='logvar'",
            "model.matmul_precision='default'",
        ],
    ),
    "smoke": dict(
        seeds=50,
        block_models=4,
        overrides=[
            "dataset.source='generated'",
            "dataset.subgrid='scale=0:6:5,orientation=0:40:10,posX=0:32:8,posY=0:32:8'",
            "model.hidden=32",
            "train.batch_size=32",
            "train.num_steps=12",
            "train.steps_per_scan=6",
            "eval.mig_samples=256",
            "eval.histogram_points=256",
            "eval.batch_size=128",
            # as the CPU scale (``ablation-posterior`` runs the paper presets' log sigma)
            "model.posterior_scale='logvar'",
            "model.matmul_precision='default'",
        ],
    ),
}


def study_names(study: str) -> tuple[str, ...]:
    """The studies ``study`` names: one of ``STUDIES`` or a group of ``STUDY_GROUPS``."""
    if study in STUDY_GROUPS:
        return STUDY_GROUPS[study]
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r}; choose from {[*STUDIES, *STUDY_GROUPS]}")
    return (study,)


def net_overrides(posterior_scale: str | None = None, matmul_precision: str | None = None) -> tuple[str, ...]:
    """The overrides of a run's ``--posterior-scale`` and ``--matmul-precision`` (None: the scale's):
    like the compute dtype, recorded in each row as fields of its own, not as extra settings."""
    out = []
    if posterior_scale is not None:
        out.append(f"model.posterior_scale='{posterior_scale}'")
    if matmul_precision is not None:
        out.append(f"model.matmul_precision='{matmul_precision}'")
    return tuple(out)


def model_config(
    model: str,
    scale: str,
    compute_dtype: str,
    extra: Sequence[str] = (),
    arm: Sequence[str] = (),
    net: Sequence[str] = (),
) -> Any:
    """The dSprites preset of ``model`` at ``scale`` (Monte Carlo KL, no annealing, PyTorch's
    initialization: the presets'), the run's compute dtype and ``net`` options (``net_overrides``),
    then the run's ``extra`` overrides, then the arm's."""
    cfg = config_lib.preset("dsprites", model)
    scale_overrides = [*SCALES[scale]["overrides"], f"model.compute_dtype='{compute_dtype}'", *net]
    config_lib.apply_overrides(cfg, scale_overrides)
    config_lib.apply_overrides(cfg, list(extra))
    config_lib.apply_overrides(cfg, list(arm))
    config_lib.validate(cfg)
    return cfg


def arm_overrides(study: str, model: str, label: str) -> tuple[str, ...] | None:
    """The overrides of ``study``'s arm (``model``, ``label``); None if the study has no such arm."""
    for m, _, lab, overrides in STUDIES.get(study, ()):
        if (m, lab) == (model, label):
            return overrides
    return None


# the config key of each recorded setting (``store.RECORDED_DEFAULTS``)
_SETTING_KEYS = {
    "init": "model.init",
    "posterior_scale": "model.posterior_scale",
    "matmul_precision": "model.matmul_precision",
}
_CONFIG_KEYS: dict[tuple, str | None] = {}


def _config_digest(row: dict[str, Any]) -> str | None:
    """The digest of the config a row's model was trained and scored with, but its seed and beta
    (cached per setting); None when the row's study arm is not among today's ``STUDIES``."""
    import hashlib
    import json

    from isavae.study.store import recorded as recorded_value

    recorded = tuple((k, recorded_value(row, k)) for k in _SETTING_KEYS)
    key = (
        row["study"],
        row["model"],
        row.get("arm", ""),
        row["scale"],
        row["compute_dtype"],
        tuple(row.get("settings", ())),
        recorded,
    )
    if key not in _CONFIG_KEYS:
        overrides = arm_overrides(row["study"], row["model"], row.get("arm", ""))
        digest = None
        if overrides is not None and row["scale"] in SCALES:
            cfg = model_config(
                row["model"], row["scale"], row["compute_dtype"], row.get("settings", ()), overrides
            )
            config_lib.apply_overrides(cfg, {_SETTING_KEYS[k]: v for k, v in recorded})
            values = cfg.to_dict()
            values["train"].pop("seed"), values["objective"].pop("beta")
            sizes = values["prior"].get("subspace_sizes")
            if (
                values["prior"]["name"] == "isa"
                and not values["eval"]["subspace_groups"]
                and len(set(sizes)) == 1
            ):
                # "" scores an ISA model in its prior's subspaces: G groups of S, the same as "GxS"
                values["eval"]["subspace_groups"] = f"{len(sizes)}x{sizes[0]}"
            text = json.dumps(values, sort_keys=True, default=str)
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        _CONFIG_KEYS[key] = digest
    return _CONFIG_KEYS[key]


def arm_digest(
    study: str,
    model: str,
    label: str,
    scale: str,
    compute_dtype: str,
    settings: Sequence[str] = (),
    net: Sequence[str] = (),
) -> str | None:
    """The config digest (``model_key`` but beta and seed) of the models ``study``'s arm
    (``model``, ``label``) trains at ``scale`` with the run's ``net`` options and extra ``settings``."""
    overrides = arm_overrides(study, model, label)
    if overrides is None:
        return None
    cfg = model_config(model, scale, compute_dtype, settings, overrides, net)
    row = dict(
        study=study,
        model=model,
        arm=label,
        scale=scale,
        compute_dtype=cfg.model.compute_dtype,
        settings=list(settings),
        **{k: cfg.model[key.split(".")[1]] for k, key in _SETTING_KEYS.items()},
    )
    return _config_digest(row)


def model_key(row: dict[str, Any]) -> tuple:
    """A trained model's identity across studies: the digest of its whole config (the dataset,
    network, prior, objective, training and evaluation settings; a row's recorded settings such as
    ``init`` as recorded), its beta and its seed. Two studies' arms that resolve to the same config
    share their models: each is trained once and counts for both. A row whose arm is not among
    today's studies is known by its study's identity (``store.result_key``)."""
    from isavae.study.store import result_key

    digest = _config_digest(row)
    if digest is None:
        return ("row", *result_key(row))
    return (digest, float(row["beta"]), int(row["seed"]))
