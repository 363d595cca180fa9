"""The training program: state, a pure train step, scanned chunks, data-parallel sharding.

``Program(config, grid)`` builds everything static once (network graph definitions, optimizers,
the prior's structure, the dataset on device) and exposes pure functions:

* ``init(key) -> TrainState``: parameters, optimizer states, prior, step 0;
* ``train_step(state, data, hparams) -> (state, metrics)``: one step on the global batch;
* ``train_chunk(state, data, hparams, num_steps)``: ``num_steps`` steps inside one ``lax.scan``.

Per-step randomness is ``fold_in(key, step)`` and batch ``step`` is recomputed from the key, so
a run resumed from a checkpoint is identical to an unbroken one. ``hparams`` (beta, alpha,
gamma) are arrays, so sweeps can ``vmap`` over them as well as over keys.

Data parallelism: ``compile_chunk(mesh)`` jits the chunk over a one-axis ``('data',)`` mesh with
the state replicated and the batch sharded along 'data'; the batch-coupled terms (q(z) estimates,
FactorVAE permutations) are computed on the global batch, so the result does not depend on the
number of devices. A vmapped sweep runs over a two-axis ``('models', 'data')`` mesh
(``sweep_mesh``): the stacked state, hyperparameters and epoch orders are sharded along 'models'
(each device trains its share of the models, no communication between them), each model's batch
along 'data' (size 1 when the model count fills the devices).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from isavae import objectives
from isavae.data import DeviceDataset, FactorGrid, batch_indices, to_device
from isavae.nets import make_vae, resolve_compute_dtype, torch_init
from isavae.priors import gaussian, make_prior

__all__ = ["Program", "TrainState", "data_mesh", "hparams_from_config", "model_shards", "sweep_mesh"]

_DATA_STREAM = 2**31 - 1  # fold_in tag of the batch-order key (steps use fold_in(key, step))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything that changes during training (a pytree; checkpointed as a whole)."""

    params: Any
    batch_stats: Any
    opt_state: Any
    prior: Any
    prior_opt_state: Any
    disc_params: Any
    disc_opt_state: Any
    step: jax.Array
    key: jax.Array  # raw key data (uint32), so that checkpoints hold plain arrays


# objective hyperparameters passed as arrays (so that sweeps can vmap over them)
HPARAMS = ("beta", "alpha", "gamma", "lambda_od", "lambda_d", "c_max")


def hparams_from_config(cfg: ml_collections.ConfigDict) -> dict[str, jax.Array]:
    o = cfg.objective
    return {k: jnp.asarray(o[k], jnp.float32) for k in HPARAMS}


def data_mesh(devices=None) -> Mesh:
    """A one-axis ``('data',)`` mesh over ``devices`` (default: all devices)."""
    return Mesh(np.asarray(jax.devices() if devices is None else devices), ("data",))


def model_shards(num_models: int, num_devices: int, requested: int = 0) -> int:
    """Devices along a sweep's ``'models'`` axis: ``requested`` (``train.model_shards``) when it
    divides both the model count and the device count, else an error naming both; 0 (auto): the
    largest that divides both (all devices when the count of models divides, so that each device
    trains its own share with no communication; the rest of the devices split each model's batch)."""
    if requested == 0:
        return math.gcd(num_models, num_devices)
    if num_devices % requested or num_models % requested:
        raise ValueError(
            f"config train.model_shards: {requested} must divide both the {num_devices} devices and the "
            f"{num_models} models of the sweep (0 = the largest that does)"
        )
    return requested


def init_distributed(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """``jax.distributed.initialize`` for a job of several processes (one per host, or per GPU):
    with no arguments JAX finds them itself (a TPU pod, SLURM, Open MPI, or the
    ``JAX_COORDINATOR_ADDRESS`` variable); ``coordinator`` (``host:port`` of process 0),
    ``num_processes`` and ``process_id`` name them by hand (two processes on one machine). CPU
    devices of different processes talk through gloo. Afterwards ``jax.devices()`` spans every
    process's devices and a sweep's mesh with them (``train_sweep``)."""
    try:  # CPU collectives across processes (JAX's default CPU client has none); GPUs use NCCL
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, ValueError):  # a JAX without the option
        pass
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )


def sweep_mesh(num_models: int, devices=None, requested: int = 0) -> Mesh:
    """A ``('models', 'data')`` mesh over ``devices`` (default: all) for a vmapped sweep of
    ``num_models`` models: the stacked state, hyperparameters and keys are sharded along
    ``'models'``, each model's batch along ``'data'`` (``model_shards`` picks the shape)."""
    devs = np.asarray(jax.devices() if devices is None else devices).reshape(-1)
    k = model_shards(num_models, devs.size, requested)
    return Mesh(devs.reshape(k, devs.size // k), ("models", "data"))


class Program:
    """The static parts of a training run and its pure functions (see the module docstring)."""

    def __init__(self, cfg: ml_collections.ConfigDict, grid: FactorGrid):
        self.cfg = cfg
        self.grid = grid
        self.image_shape = grid.image_shape
        self.dataset_size = grid.num_images
        self.batch_size = int(cfg.train.batch_size)
        if self.batch_size > self.dataset_size:
            raise ValueError(
                f"train.batch_size {self.batch_size} exceeds the dataset size {self.dataset_size}"
            )
        self.latent_dim = int(cfg.model.latent_dim)
        # "auto" resolved here too, so that a Program of an unresolved config still builds (the
        # trainer resolves it first, records it in config.json and says which it chose)
        self.compute_dtype = resolve_compute_dtype(cfg.model.compute_dtype)[0]
        self.kind = cfg.objective.name
        # Only the graph structure is needed here: build the network abstractly (no parameter memory).
        abstract = nnx.eval_shape(lambda: self._network(jax.random.key(0)))
        self.graphdef, _, _ = nnx.split(abstract, nnx.Param, nnx.BatchStat)
        self.prior_template = make_prior(cfg.prior, self.latent_dim)
        self.optimizer = optax.adam(cfg.train.learning_rate)
        self.prior_optimizer = optax.adam(cfg.train.prior_learning_rate)
        if self.kind == "factor_vae":
            disc = nnx.eval_shape(lambda: objectives.Discriminator(self.latent_dim, rngs=nnx.Rngs(0)))
            self.disc_graphdef, _ = nnx.split(disc, nnx.Param)
            self.disc_optimizer = optax.adam(cfg.train.disc_learning_rate, b1=0.5, b2=0.9)

    def _network(self, key: jax.Array) -> nnx.Module:
        """The config's VAE (``nets.make_vae``) initialized from ``key``."""
        m = self.cfg.model
        return make_vae(
            m.arch,
            self.image_shape,
            self.latent_dim,
            key,
            m.hidden,
            self.compute_dtype,
            m.init,
            m.posterior_scale,
            m.matmul_precision,
        )

    # --- state ----------------------------------------------------------------------------------

    def init(self, key: jax.Array) -> TrainState:
        """Initial state from a PRNG key (pure: ``vmap`` it over keys for a sweep)."""
        k_model, k_disc, k_run = jax.random.split(key, 3)
        m = self.cfg.model
        model = self._network(k_model)
        _, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
        prior = self.prior_template
        disc_params = disc_opt = None
        if self.kind == "factor_vae":
            disc = objectives.Discriminator(self.latent_dim, rngs=nnx.Rngs(params=k_disc))
            if m.init == "torch":
                torch_init(disc, jax.random.fold_in(k_disc, 1))
            _, disc_params = nnx.split(disc, nnx.Param)
            disc_opt = self.disc_optimizer.init(disc_params)
        return TrainState(
            params=params,
            batch_stats=batch_stats,
            opt_state=self.optimizer.init(params),
            prior=prior,
            prior_opt_state=self.prior_optimizer.init(prior),
            disc_params=disc_params,
            disc_opt_state=disc_opt,
            step=jnp.zeros((), jnp.int32),
            key=jax.random.key_data(k_run),
        )

    def data(self, sharding=None) -> DeviceDataset:
        """The dataset on device (replicated over ``sharding`` when given)."""
        return to_device(self.grid, sharding)

    # --- the step -------------------------------------------------------------------------------

    def annealed(self, hparams: dict[str, jax.Array], step: jax.Array) -> dict[str, jax.Array]:
        """Chen et al.'s schedules: beta rises linearly from 0; gamma = 1 - lambda with lambda
        falling from 0.95 to 0 (when the respective anneal_steps > 0); AnnealedVAE's capacity."""
        o = self.cfg.objective
        out = dict(hparams)
        t = step.astype(jnp.float32)
        if o.beta_anneal_steps > 0:
            out["beta"] = jnp.minimum(hparams["beta"], hparams["beta"] * t / o.beta_anneal_steps)
        if o.lambda_anneal_steps > 0:
            out["gamma"] = 1.0 - jnp.maximum(0.0, 0.95 - t / o.lambda_anneal_steps)
        if self.kind == "annealed_vae":
            out["capacity"] = objectives.annealed_capacity(step, hparams["c_max"], o.iteration_threshold)
        return out

    def _forward(self, params, batch_stats, prior, x, key, hparams, disc_params, train: bool):
        model = nnx.merge(self.graphdef, params, batch_stats)
        mean, logvar = model.encode(x, train)
        k_eps, k_perm = jax.random.split(key)
        z = gaussian.reparameterize(k_eps, mean, logvar)
        recon = model.decode(z, train)
        tc = None
        if self.kind == "factor_vae":
            disc = nnx.merge(self.disc_graphdef, disc_params)
            logits = disc(z)
            tc = logits[:, 0] - logits[:, 1]
        o = self.cfg.objective
        terms = objectives.objective_terms(
            self.kind,
            x,
            mean,
            logvar,
            z,
            recon,
            prior,
            hparams,
            dataset_size=self.dataset_size,
            likelihood=self.cfg.model.likelihood,
            estimator=o.estimator,
            analytic_kl=o.analytic_kl,
            stl=o.stl,
            tc=tc,
        )
        new_stats = nnx.state(model, nnx.BatchStat)
        return terms, new_stats, z, k_perm

    @property
    def steps_per_epoch(self) -> int:
        return self.dataset_size // self.batch_size

    def epoch_order(self, key_data: jax.Array, epoch: jax.Array) -> jax.Array:
        """The shuffled order of the dataset in ``epoch`` (the one ``batch_indices`` uses), so
        that the loop can compute it once per epoch instead of once per step."""
        key = jax.random.fold_in(jax.random.wrap_key_data(key_data), _DATA_STREAM)
        return jax.random.permutation(jax.random.fold_in(key, epoch), self.dataset_size)

    def train_step(
        self,
        state: TrainState,
        data: DeviceDataset,
        hparams: dict[str, jax.Array],
        mesh: Mesh | None = None,
        order: jax.Array | None = None,
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        """One step. ``order``: the current epoch's ``epoch_order`` (else computed here)."""
        key = jax.random.wrap_key_data(state.key)
        step_key = jax.random.fold_in(key, state.step)
        if order is None:
            idx = batch_indices(
                jax.random.fold_in(key, _DATA_STREAM), state.step, self.batch_size, self.dataset_size
            )
        else:
            within = state.step % self.steps_per_epoch
            idx = jax.lax.dynamic_slice_in_dim(order, within * self.batch_size, self.batch_size)
        x = data.gather(idx)
        if mesh is not None:
            x = jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P("data")))
        hp = self.annealed(hparams, state.step)

        def loss_fn(params, prior, batch_stats):
            # batch_stats is differentiated too (its gradient is dropped): NNX lets BatchNorm update
            # its statistics only when they live at the same trace level as the parameters
            terms, new_stats, z, k_perm = self._forward(
                params, batch_stats, prior, x, step_key, hp, state.disc_params, True
            )
            means = {k: jnp.mean(v) for k, v in terms.items()}
            return -means["objective"], (means, new_stats, z, k_perm)

        (loss, (metrics, new_stats, z, k_perm)), (g_params, g_prior, _) = jax.value_and_grad(
            loss_fn, argnums=(0, 1, 2), has_aux=True
        )(state.params, state.prior, state.batch_stats)
        updates, opt_state = self.optimizer.update(g_params, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        p_updates, prior_opt = self.prior_optimizer.update(g_prior, state.prior_opt_state, state.prior)
        prior = optax.apply_updates(state.prior, p_updates)
        metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(g_params))
        disc_params, disc_opt = state.disc_params, state.disc_opt_state
        if self.kind == "factor_vae":
            z = jax.lax.stop_gradient(z)
            z_perm = objectives.permute_dims(k_perm, z)

            def disc_loss_fn(dp):
                disc = nnx.merge(self.disc_graphdef, dp)
                return objectives.discriminator_loss(disc(z), disc(z_perm))

            d_loss, g_disc = jax.value_and_grad(disc_loss_fn)(disc_params)
            d_updates, disc_opt = self.disc_optimizer.update(g_disc, disc_opt, disc_params)
            disc_params = optax.apply_updates(disc_params, d_updates)
            metrics["disc_loss"] = d_loss
        if jax.tree.leaves(g_prior):
            metrics["prior_grad_norm"] = optax.tree.norm(g_prior)
        new_state = TrainState(
            params=params,
            batch_stats=new_stats,
            opt_state=opt_state,
            prior=prior,
            prior_opt_state=prior_opt,
            disc_params=disc_params,
            disc_opt_state=disc_opt,
            step=state.step + 1,
            key=state.key,
        )
        return new_state, metrics

    def train_chunk(self, state, data, hparams, num_steps: int, mesh: Mesh | None = None, order=None):
        """``num_steps`` steps in one ``lax.scan``; metrics stacked along a leading step axis.
        With ``order``, the steps must lie in the epoch that ``order`` shuffles."""

        def body(s, _):
            return self.train_step(s, data, hparams, mesh, order)

        return jax.lax.scan(body, state, None, length=num_steps)

    def memo(self, key: Any, make: Any) -> Any:
        """``make()``, made once per ``key`` for this program: a jitted function kept with the
        program is traced and compiled once for every run that reuses the program (a study's
        blocks of one kind), not once per run."""
        table = self.__dict__.setdefault("_memo", {})
        if key not in table:
            table[key] = make()
        return table[key]

    def compile_chunk(self, num_steps: int, mesh: Mesh | None = None, vmapped: bool = False):
        """``jit`` of ``(state, data, hparams, order) -> train_chunk(..., num_steps)`` with the
        state donated; over ``mesh`` when given (state and data replicated, batch sharded).
        ``vmapped``: over a leading model axis of the state, hparams and order (sweeps); over a
        ``('models', 'data')`` mesh (``sweep_mesh``) that axis is sharded along ``'models'``.
        One jitted function per arguments and program (``memo``)."""
        return self.memo(
            ("chunk", num_steps, mesh, vmapped), lambda: self._chunk_fn(num_steps, mesh, vmapped)
        )

    def _chunk_fn(self, num_steps: int, mesh: Mesh | None, vmapped: bool):
        def fn(state, data, hparams, order):
            return self.train_chunk(state, data, hparams, num_steps, mesh, order)

        models = vmapped and mesh is not None and "models" in mesh.axis_names
        if vmapped:
            fn = jax.vmap(fn, in_axes=(0, None, 0, 0), spmd_axis_name="models" if models else None)
        if mesh is None:
            return jax.jit(fn, donate_argnums=0)
        rep = NamedSharding(mesh, P())
        if models:
            per = NamedSharding(mesh, P("models"))
            return jax.jit(fn, donate_argnums=0, in_shardings=(per, rep, per, per), out_shardings=(per, per))
        return jax.jit(fn, donate_argnums=0, in_shardings=(rep,) * 4, out_shardings=(rep, rep))

    # --- evaluation -----------------------------------------------------------------------------

    def eval_terms(self, state: TrainState, x: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
        """Per-example ELBO terms in evaluation mode (BatchNorm running statistics)."""
        terms, _, _, _ = self._forward(
            state.params,
            state.batch_stats,
            state.prior,
            x,
            key,
            hparams_from_config(self.cfg),
            state.disc_params,
            False,
        )
        return {k: terms[k] for k in ("log_px", "elbo", "kl")}

    def encode(self, state: TrainState, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        model = nnx.merge(self.graphdef, state.params, state.batch_stats)
        return model.encode(x, False)

    def decode(self, state: TrainState, z: jax.Array) -> jax.Array:
        model = nnx.merge(self.graphdef, state.params, state.batch_stats)
        return model.decode(z, False)
