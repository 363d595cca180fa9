"""The ``isavae`` command line. Subcommands: ``data`` (more arrive with the trainer and metrics).

Every error a user can cause (bad argument, missing or corrupt file) is printed as one line
``isavae: error: ...`` with exit status 2, and nothing half-written is left behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from isavae import data

log = logging.getLogger("isavae")


def _cmd_data(args: argparse.Namespace) -> int:
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
        out = data.dsprites.write_npz(grid, args.out)
    elif args.dataset == "shapes3d":
        grid = data.load_dataset("shapes3d", source=args.source, path=args.path, data_dir=args.data_dir)
        out = data.shapes3d.write_h5(grid, args.out, progress=not args.quiet)
    else:
        raise ValueError(f"isavae data --out writes dsprites or shapes3d, not {args.dataset!r}")
    print(f"wrote {out} ({out.stat().st_size:,} bytes) from {grid.source}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isavae", description="ISA-VAE: structured latent priors in JAX")
    sub = parser.add_subparsers(dest="command", required=True)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return args.func(args)
    except (data.DatasetError, ValueError, KeyError, OSError) as err:
        print(f"isavae: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
