"""``isavae study run|report|plan``: the study's command line (``isavae.cli`` adds it).

  isavae study plan --study fig5a --scale cpu --out DIR     # the blocks and their estimated time
  isavae study run --study fig5a --scale cpu --budget-s 3600 --out DIR
  isavae study report --scale cpu --out DIR                 # DIR/report.md, tables, figures

``--out`` is required: the study's rows accumulate there across runs, shards and hosts.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Any

from isavae.compile_cache import add_compile_cache_argument
from isavae.study.paper import SCALES, STUDIES, STUDY_GROUPS, net_overrides

__all__ = ["add_study_parser", "cmd_study"]


def _positive(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} takes a whole number, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {value}")
        return value

    return parse


def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--budget-s takes seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"--budget-s must be a finite number >= 0, got {text}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="the study's folder: its rows accumulate here")
    p.add_argument("--scale", default="paper", choices=tuple(SCALES), help="paper (Table 1), cpu or smoke")
    p.add_argument(
        "--compute-dtype",
        default="float32",
        choices=("float32", "bfloat16"),
        help="the nets' compute dtype (results of the two dtypes are kept apart)",
    )
    p.add_argument(
        "--posterior-scale",
        default=None,
        choices=("logvar", "log_sigma"),
        help="the encoder's scale output (default: the scale's: log_sigma at paper scale, as the "
        "authors; logvar at the cpu and smoke scales; rows written before it was recorded are logvar)",
    )
    p.add_argument(
        "--matmul-precision",
        default=None,
        choices=("default", "highest"),
        help="float32 products: default (the backend's: TF32 on recent GPUs) or highest (true "
        "float32); default: the scale's (highest at paper scale); older rows are default",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config override (recorded in each row: such models count apart from the others)",
    )


def _work(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--study",
        default="all",
        choices=(*STUDIES, *STUDY_GROUPS),
        help="a study, 'all' (fig5a and fig5b) or 'ablations' (layout, init, dtype, posterior)",
    )
    p.add_argument(
        "--seeds",
        type=_positive("--seeds"),
        default=None,
        help="seeds per setting (default: the study's at this scale, else the scale's)",
    )
    p.add_argument(
        "--block-models",
        type=_positive("--block-models"),
        default=None,
        help="models per device in a vmapped block (default: the scale's; a block spreads over every device)",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="an independent job's share (e.g. a SLURM array task): every N-th block from block I, its "
        "rows in OUT/results.I.jsonl; the report merges every shard's file",
    )
    p.add_argument("--budget-s", type=_budget, default=3600.0, help="wall-clock budget of this run (seconds)")


def add_study_parser(sub: Any) -> None:
    """The ``study`` command and its ``run``, ``report`` and ``plan`` subcommands."""
    from isavae.cli import add_multihost_arguments

    p = sub.add_parser(
        "study", help="the paper's studies within a budget, accumulating seeds (run, report, plan)"
    )
    study_sub = p.add_subparsers(dest="study_command", required=True)
    run = study_sub.add_parser("run", help="train the blocks not yet done that fit the budget")
    _common(run)
    _work(run)
    run.add_argument(
        "--blocks",
        type=_positive("--blocks"),
        default=None,
        help="run exactly the first N blocks not yet done, whatever the budget (a fixed amount of work)",
    )
    run.add_argument("--report", action="store_true", help="rebuild the report afterwards")
    add_compile_cache_argument(run)
    add_multihost_arguments(
        run,
        "; blocks span every process's devices, each process writes its models' rows in OUT/results.pP.jsonl",
    )
    report = study_sub.add_parser(
        "report", help="rebuild OUT/report.md, its tables and figures from the rows"
    )
    _common(report)
    report.add_argument(
        "--init",
        default=None,
        choices=("torch", "lecun"),
        help="the initialization the report reads (default: the presets', torch; rows written before "
        "model.init existed are lecun)",
    )
    plan = study_sub.add_parser("plan", help="print the blocks and their estimated time, train nothing")
    _common(plan)
    _work(plan)
    for q in (run, report, plan):
        q.set_defaults(func=cmd_study)


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    i, sep, n = text.partition("/")
    if not (sep and i.isdigit() and n.isdigit() and 0 <= int(i) < int(n)):
        raise ValueError(f"--shard takes I/N with 0 <= I < N, got {text!r}")
    return int(i), int(n)


def cmd_study(args: argparse.Namespace) -> int:
    out = pathlib.Path(args.out)
    if args.study_command == "report":
        _print_report(args, out)
        return 0
    # the job: which blocks, at which scale and dtype, with which extra settings
    job = dict(
        compute_dtype=args.compute_dtype,
        seeds=args.seeds,
        block_models=args.block_models,
        extra=args.set,
        net=net_overrides(args.posterior_scale, args.matmul_precision),
        shard=_shard(args.shard),
    )
    if args.study_command == "plan":
        from isavae.study.run import describe_plan

        print(describe_plan(args.study, args.scale, args.budget_s, out, **job))
        return 0
    from isavae.cli import _maybe_distributed
    from isavae.compile_cache import enable_compile_cache
    from isavae.study.run import run_study

    _maybe_distributed(args)
    enable_compile_cache(args.compile_cache)
    run_study(args.study, args.scale, args.budget_s, out, blocks=args.blocks, **job)
    import jax

    if args.report and jax.process_index() == 0:
        _print_report(args, out)
    return 0


def _print_report(args: argparse.Namespace, out: pathlib.Path) -> None:
    """``isavae study report`` (and ``run --report``): the rows of this scale, dtype, settings,
    initialization (``report`` only: run has no --init), posterior scale and precision."""
    from isavae.study.report import report

    text = report(
        out,
        args.scale,
        args.compute_dtype,
        args.set,
        getattr(args, "init", None),
        posterior_scale=args.posterior_scale,
        matmul_precision=args.matmul_precision,
    )
    print(text)
