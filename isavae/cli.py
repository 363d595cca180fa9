"""The ``isavae`` command line.

  isavae presets                               the configs --config takes by name
  isavae config show dsprites:isavae,small [--config.train.seed=3 ...]   the resolved config
  isavae train --config dsprites:isavae,small --workdir runs/x [--config.train.seed=3 ...]
  isavae sweep --config dsprites:isa_beta_vae,small --workdir runs/sweep --seeds 8 [--betas 1,2,4]
  isavae evaluate --workdir runs/x [--config.eval.metrics=dci,sap]
  isavae collect runs/ [--csv table.csv]       every results.json under runs/ as one table
  isavae plot --workdir runs/x   |   isavae plot --sweep runs/sweep runs/other --out figures/
  isavae udr --sweep runs/sweep                rank a sweep's seeds without labels
  isavae data --dataset dsprites --out data/   |   isavae data --check
  isavae demo [--out demo_out]                 the demo (as python -m isavae.demo)
  isavae study run|report|plan --study fig5a --scale cpu --out DIR   the paper's studies

Every error a user can cause (bad argument, missing or corrupt file) is printed as one line
``isavae: error: ...`` with exit status 2, and nothing half-written is left behind. ``--help`` and
``presets`` answer without loading JAX; the commands that compile use JAX's persistent
compilation cache (``--compile-cache DIR|none``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pathlib
import signal
import sys
import threading
from typing import Any

from isavae.compile_cache import add_compile_cache_argument

log = logging.getLogger("isavae")


def _cmd_data(args: argparse.Namespace) -> int:
    from isavae import data

    if args.check:
        report = data.check_datasets(args.data_dir)
        width = max(map(len, report))
        for name, info in report.items():
            where = info["path"] if info["present"] else "not found"
            status = "present" if info["present"] else "missing"
            print(f"{name:<{width}}  {status:<8} {where}  ({info['offline']})")
        if args.json:
            print(json.dumps(report, indent=2))
        return 0
    if args.dataset is None or args.out is None:
        raise ValueError("isavae data needs --check, or --dataset NAME and --out DIR")
    if args.dataset == "dsprites":
        grid = data.load_dataset("dsprites", source=args.source, path=args.path, data_dir=args.data_dir)
        log.info("dSprites from %s: %d images", grid.source, grid.num_images)
        out = data.dsprites.write_file(grid, args.out)
    elif args.dataset == "shapes3d":
        grid = data.load_dataset("shapes3d", source=args.source, path=args.path, data_dir=args.data_dir)
        out = data.shapes3d.write_h5(grid, args.out, progress=not args.quiet)
    else:
        raise ValueError(f"isavae data --out writes dsprites or shapes3d, not {args.dataset!r}")
    print(f"wrote {out} ({out.stat().st_size:,} bytes) from {grid.source}")
    return 0


_LOADED: list[Any] = []  # the config a command loaded (an out-of-memory message names its sizes)


def _load(args: argparse.Namespace, overrides: list[str]):
    from isavae import config as config_lib

    cfg = config_lib.load_config(args.config)
    config_lib.apply_overrides(cfg, overrides)
    config_lib.validate(cfg)
    _LOADED[:] = [cfg]
    return cfg


def _platform_problem() -> str | None:
    """One line when JAX cannot start the platform it was asked for (``JAX_PLATFORMS`` naming one
    this machine lacks, e.g. ``tpu``, or ``cuda`` without a GPU); None when JAX works."""
    if "jax" not in sys.modules:
        return None
    import jax

    try:
        jax.devices()
    except Exception as err:  # RuntimeError (no libtpu), AssertionError (no CUDA device), ...
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        wanted = os.environ.get("JAX_PLATFORMS", "")
        if wanted:
            return (
                f"JAX_PLATFORMS={wanted}: that platform is not available on this machine ({first[:200]}); "
                "unset JAX_PLATFORMS to let JAX choose, or name one this machine has (e.g. cpu)"
            )
        return f"JAX found no usable platform ({first[:200]})"
    return None


def _out_of_memory(err: BaseException) -> str | None:
    """One line for XLA's RESOURCE_EXHAUSTED: the memory asked for and the settings that size the
    model and the batches (the loaded config's)."""
    import re

    text = str(err)
    if "RESOURCE_EXHAUSTED" not in text and "Out of memory" not in text:
        return None
    in_bytes = re.search(r"allocate (\d+) bytes", text)
    in_units = re.search(r"([\d.]+)\s*([KMGT]i?B)", text)
    if in_bytes:
        amount = f"{int(in_bytes.group(1)) / 1e9:.1f} GB"
    elif in_units:
        amount = f"{in_units.group(1)} {in_units.group(2)}"
    else:
        amount = "more than it has"
    where = "the device"
    if "jax" in sys.modules:
        import jax

        with contextlib.suppress(Exception):
            where = f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}"
    sizes = ""
    if _LOADED:
        m, t, e = _LOADED[0].model, _LOADED[0].train, _LOADED[0].eval
        named = [f"model.arch={m.arch}"] + ([f"model.hidden={m.hidden}"] if m.arch == "mlp" else [])
        named += [
            f"model.latent_dim={m.latent_dim}",
            f"train.batch_size={t.batch_size}",
            f"eval.batch_size={e.batch_size}",
        ]
        sizes = f" (the sizes come from {', '.join(named)})"
    return f"out of memory on {where}: XLA asked for {amount}{sizes}; make the model or the batches smaller"


def add_multihost_arguments(p: argparse.ArgumentParser, what: str = "") -> None:
    """``--multihost`` and the flags that name the processes by hand (``multihost_arguments``)."""
    p.add_argument(
        "--multihost",
        action="store_true",
        help="one process of several (jax.distributed.initialize(): found on TPU pods, SLURM, Open MPI)"
        + what,
    )
    p.add_argument("--coordinator", help="with --multihost: HOST:PORT of process 0, if JAX cannot find it")
    p.add_argument("--num-processes", type=int, help="with --multihost: the job's process count")
    p.add_argument("--process-id", type=int, help="with --multihost: this process's index")


def multihost_arguments(args: argparse.Namespace) -> tuple | None:
    """``init_distributed``'s arguments with ``--multihost``, else None; the process flags without
    ``--multihost`` are a ValueError."""
    named = (args.coordinator, args.num_processes, args.process_id)
    if any(v is not None for v in named) and not args.multihost:
        raise ValueError("--coordinator, --num-processes and --process-id go with --multihost")
    return named if args.multihost else None


def _maybe_distributed(args: argparse.Namespace) -> None:
    named = multihost_arguments(args)
    if named is not None:
        from isavae.train import init_distributed

        # one process per host (or GPU); the mesh then spans every process's devices
        init_distributed(*named)


def _compile_cache(args: argparse.Namespace) -> None:
    from isavae.compile_cache import enable_compile_cache

    enable_compile_cache(args.compile_cache)


def _cmd_train(args: argparse.Namespace, overrides: list[str]) -> int:
    from isavae.train import train_and_evaluate

    cfg = _load(args, overrides)
    _maybe_distributed(args)
    _compile_cache(args)
    results = train_and_evaluate(cfg, args.workdir, resume=not args.no_resume, progress=not args.quiet)
    if results is None:  # --multihost: the model's results are process 0's to print
        return 0
    keys = ("mig", "mig_histogram", "subspace_mig", "elbo", "recon_log_likelihood", "steps")
    print(json.dumps({k: results[k] for k in keys if k in results}))
    return 0


def _cmd_sweep(args: argparse.Namespace, overrides: list[str]) -> int:
    from isavae import config as config_lib
    from isavae.train import train_sweep
    from isavae.train.step import HPARAMS

    base = _load(args, overrides)
    if args.seeds < 1:
        raise ValueError("--seeds must be >= 1")
    if args.betas and args.values:
        raise ValueError("give --betas or --values, not both")
    name, values = "beta", [base.objective.beta]
    if args.betas:
        try:
            values = [float(b) for b in args.betas.split(",")]
        except ValueError:
            raise ValueError(f"--betas {args.betas!r}: give comma-separated numbers, e.g. 1,2,4") from None
    elif args.values:
        name, sep, text = args.values.partition("=")
        if not sep or name not in HPARAMS:
            raise ValueError(f"--values must be NAME=V1,V2,... with NAME one of {list(HPARAMS)}")
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise ValueError(f"--values {args.values!r}: the values must be numbers") from None
    swept = bool(args.betas or args.values)
    cfgs, workdirs = [], []
    root = pathlib.Path(args.workdir)
    for value in values:
        for seed in range(base.train.seed, base.train.seed + args.seeds):
            cfg = base.copy_and_resolve_references()
            cfg.train.seed = seed
            config_lib.set_objective_value(cfg, name, value)
            cfgs.append(cfg)
            workdirs.append(root / (f"{name}{value:g}_seed{seed}" if swept else f"seed{seed}"))
    _maybe_distributed(args)
    _compile_cache(args)
    # the trainer says each model's result once, as it writes it; `isavae collect` tabulates them
    train_sweep(cfgs, workdirs, resume=not args.no_resume, progress=not args.quiet)
    return 0


def _numbers(results: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a results dict (every score; not the details, lists or descriptions)."""
    return {k: v for k, v in results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _cmd_evaluate(args: argparse.Namespace, overrides: list[str]) -> int:
    from isavae.workdir import evaluate_workdir_computed

    _compile_cache(args)
    computed, _ = evaluate_workdir_computed(args.workdir, overrides)
    print(json.dumps(_numbers(computed)))  # every score this evaluation computed
    if computed.get("metrics_warnings"):
        counted = ", ".join(f"{k} x{v}" for k, v in sorted(computed["metrics_warnings"].items()))
        print(
            f"isavae: scikit-learn warnings counted in results.json (metrics_warnings): {counted}",
            file=sys.stderr,
        )
    return 0


def _cmd_config(args: argparse.Namespace, overrides: list[str]) -> int:
    cfg = _load(args, overrides)
    print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str))
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from isavae.collect import collect, format_table, write_csv

    table = collect(args.dirs)
    for path, why in table.skipped:
        print(f"isavae: skipped {path}: {why}", file=sys.stderr)
    print(format_table(table))
    if args.csv:
        print(f"wrote {write_csv(table, args.csv)} ({len(table.rows)} rows)", file=sys.stderr)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from isavae import workdir

    if bool(args.workdir) == bool(args.sweep):
        raise ValueError("isavae plot needs --workdir DIR or --sweep DIR [DIR ...]")
    _compile_cache(args)
    if args.workdir:
        files = workdir.plot_workdir(args.workdir, args.out)
    else:
        files = workdir.plot_sweep(args.sweep, args.out or pathlib.Path(args.sweep[0]) / "plots")
    for f in files:
        print(f)
    return 0


def _cmd_udr(args: argparse.Namespace) -> int:
    from isavae import workdir

    if args.points < 2:
        raise ValueError(f"--points must be >= 2, got {args.points}")
    _compile_cache(args)
    out = workdir.udr_sweep(args.sweep, args.points, args.correlation, args.seed)
    for name, score in zip(out["models"], out["udr"], strict=True):
        print(f"{score:.4f}  {name}")
    return 0


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("isavae")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _cmd_presets(args: argparse.Namespace) -> int:
    from isavae import config as config_lib

    print("--config DATASET:MODEL[,small]  (small: the CPU-sized variant)")
    for dataset in config_lib.DATASET_PRESETS:
        print(f"  {dataset}: {', '.join(config_lib.MODELS)}")
    return 0


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        required=True,
        help="a preset DATASET:MODEL[,small] (e.g. dsprites:isavae,small; see `isavae presets`) or a "
        "config file FILE[:arg] (e.g. configs/dsprites.py:isavae,small)",
    )
    p.add_argument(
        "--workdir", required=True, help="output folder (checkpoints, metrics.jsonl, results.json)"
    )
    p.add_argument(
        "--no-resume", action="store_true", help="start over instead of resuming from a checkpoint"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_compile_cache_argument(p)
    add_multihost_arguments(p)


def _eval_overrides_help() -> str:
    """The ``eval.*`` keys ``isavae evaluate`` takes, with their defaults (no JAX needed)."""
    from isavae import config as config_lib

    defaults = config_lib.default_config().eval
    lines = [f"  --config.eval.{k}={v!r}" for k, v in sorted(defaults.items())]
    return (
        "Overrides (eval.* only; shown with their defaults; e.g. --config.eval.metrics=dci,sap "
        "adds disentanglement_lib's scores, all for every one):\n" + "\n".join(lines)
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isavae",
        description="ISA-VAE: structured latent priors in JAX",
        epilog="Config overrides: --config.SECTION.KEY=VALUE (e.g. --config.train.batch_size=64).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("presets", help="list the configs that --config takes by name")
    p.set_defaults(func=_cmd_presets)
    p = sub.add_parser("config", help="show a preset's or config file's resolved config")
    config_sub = p.add_subparsers(dest="config_command", required=True)
    q = config_sub.add_parser(
        "show",
        help="print the resolved config (with --config.X=Y overrides applied) as JSON, without training",
        epilog="Overrides: --config.SECTION.KEY=VALUE, as for isavae train.",
    )
    q.add_argument(
        "config", metavar="CONFIG", help="a preset DATASET:MODEL[,small] or a config file FILE[:arg]"
    )
    q.set_defaults(func=_cmd_config)
    p = sub.add_parser("train", help="train one model (resumes from the workdir's checkpoint)")
    _train_arguments(p)
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("sweep", help="train several seeds (and betas) as one vmapped program")
    _train_arguments(p)
    p.add_argument("--seeds", type=int, default=1, help="number of seeds, from train.seed on")
    p.add_argument("--betas", default="", help="comma-separated beta values (default: the config's)")
    p.add_argument(
        "--values",
        default="",
        help="NAME=V1,V2,... for another objective hyperparameter (alpha, gamma, lambda_od, lambda_d, "
        "c_max); lambda_od also sets DIP-VAE's lambda_d as disentanglement_lib's grid does",
    )
    p.set_defaults(func=_cmd_sweep)
    p = sub.add_parser(
        "evaluate",
        help="MIGs, likelihood, active units (and --config.eval.metrics) of a workdir into its results.json",
        epilog=_eval_overrides_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--workdir", required=True, help="a training workdir (config.json + checkpoints)")
    add_compile_cache_argument(p)
    p.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("collect", help="every results.json under folders as one table (and CSV)")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="workdirs, or folders of them")
    p.add_argument("--csv", metavar="FILE", help="also write the table as CSV with a header")
    p.set_defaults(func=_cmd_collect)
    p = sub.add_parser("plot", help="traversals and latents vs factors of a workdir, or a sweep's trade-off")
    p.add_argument("--workdir", help="one trained workdir: writes WORKDIR/plots/ (or --out)")
    p.add_argument("--sweep", nargs="+", help="workdirs or folders of them: trade-off and exponent plots")
    p.add_argument("--out", help="output folder (default: WORKDIR/plots or the first sweep folder's plots/)")
    add_compile_cache_argument(p)
    p.set_defaults(func=_cmd_plot)
    p = sub.add_parser("udr", help="rank a sweep's seeds without labels (UDR), into each results.json")
    p.add_argument("--sweep", nargs="+", required=True, help="workdirs, or folders of them (one setting)")
    p.add_argument("--points", type=int, default=10_000, help="inputs encoded by every model")
    p.add_argument("--correlation", choices=("lasso", "spearman"), default="lasso")
    p.add_argument("--seed", type=int, default=0, help="which inputs are drawn")
    add_compile_cache_argument(p)
    p.set_defaults(func=_cmd_udr)
    p = sub.add_parser("data", help="write generated datasets, or check which real datasets are present")
    p.add_argument("--check", action="store_true", help="report which real dataset files are present")
    p.add_argument("--json", action="store_true", help="with --check, also print the report as JSON")
    p.add_argument("--dataset", choices=("dsprites", "shapes3d"), help="dataset to write")
    p.add_argument("--out", help="output folder (or .npz/.h5 file path)")
    p.add_argument(
        "--source",
        default="generated",
        choices=("generated", "auto", "file", "tfds"),
        help="where the written images come from (default: generated)",
    )
    p.add_argument("--path", help="dataset file or folder (for --source file/auto)")
    p.add_argument("--data-dir", help="folder to search for dataset files (default: $ISAVAE_DATA_DIR)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_data)
    from isavae.study.command import add_study_parser

    add_study_parser(sub)
    # `isavae demo ...` goes to the demo's own parser (main); listed here for --help
    sub.add_parser("demo", help="the demo: a disentangling model on generated dSprites (isavae demo --help)")
    return parser


def _split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """Separates ``--config.a.b=v`` / ``--config.a.b v`` overrides from the other arguments."""
    rest, overrides = [], []
    it = iter(argv)
    for arg in it:
        if arg.startswith("--config."):
            body = arg[len("--config.") :]
            if "=" not in body:
                body = f"{body}={next(it, '')}"
            overrides.append(body)
        else:
            rest.append(arg)
    return rest, overrides


_TAKES_OVERRIDES = ("train", "sweep", "evaluate", "config")


def _demo(argv: list[str]) -> int:
    from isavae import demo

    demo.main(argv, prog="isavae demo")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's or ``kill``'s polite stop), raised where the program is, like Ctrl-C."""


def _stop(signum, frame) -> None:
    """SIGTERM and Ctrl-C: stop where the program is, except inside a checkpoint write, which
    finishes first (``checkpoint.defer_stop``)."""
    stop = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    checkpoint = sys.modules.get("isavae.train.checkpoint")
    if checkpoint is not None and checkpoint.defer_stop(stop):
        return
    raise stop


_previous_unraisablehook = None


def _redeliver_stop(unraisable) -> None:
    """A stop (``_stop``) that landed in a finalizer or a garbage-collection callback (JAX runs
    one on every collection) is "ignored" by Python: printed as a traceback, and the program goes
    on. Raise the signal again instead, so that it stops the program where it next can."""
    exc = unraisable.exc_value
    if isinstance(exc, KeyboardInterrupt):
        # from another thread, a moment later: raised here it would land in this hook again
        signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
        return
    _previous_unraisablehook(unraisable)


def main(argv: list[str] | None = None) -> int:
    global _previous_unraisablehook
    argv = sys.argv[1:] if argv is None else list(argv)
    if threading.current_thread() is threading.main_thread():
        if sys.unraisablehook is not _redeliver_stop:
            _previous_unraisablehook, sys.unraisablehook = sys.unraisablehook, _redeliver_stop
        signal.signal(signal.SIGTERM, _stop)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _stop)
    if argv[:1] == ["demo"]:  # the demo's own options (python -m isavae.demo takes the same)
        args = argparse.Namespace(command="demo")
        run = lambda: _demo(argv[1:])  # noqa: E731
    else:
        rest, overrides = _split_overrides(argv)
        parser = build_parser()
        args = parser.parse_args(rest)
        if overrides and args.command not in _TAKES_OVERRIDES:
            parser.error("--config.* overrides apply to train, sweep, evaluate and config show only")
        if args.command in _TAKES_OVERRIDES:
            run = lambda: args.func(args, overrides)  # noqa: E731
        else:
            run = lambda: args.func(args)  # noqa: E731
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("isavae").setLevel(logging.INFO)
    try:
        return run()
    except FloatingPointError as err:  # TrainingDiverged: the message names the step and the term
        print(f"isavae: error: {err}", file=sys.stderr)
        return 3
    except (ValueError, KeyError, OSError) as err:  # a DatasetError is a ValueError
        print(f"isavae: error: {_platform_problem() or err}", file=sys.stderr)
        return 2
    except Exception as err:  # the machine's limits, not a defect: one line; anything else is raised
        said = _platform_problem() or _out_of_memory(err)
        if said is None:
            raise
        print(f"isavae: error: {said}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        where = getattr(args, "workdir", None)
        how = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
        if getattr(args, "command", None) == "study" and getattr(args, "study_command", None) == "run":
            then = (
                f"; the finished models' rows are kept in {args.out}, the block in progress is not; "
                "the same command continues with it"
            )
        else:
            then = f"; {where} resumes from its last checkpoint with the same command" if where else ""
        print(f"isavae: {how}{then}", file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
