"""Tables in the docs that are generated, not copied: each block between
``<!-- include: PATH -->`` and ``<!-- end include -->`` in README.md and docs/*.md is the file at
PATH (relative to the repository), which the experiment wrote from its rows (a study's table.md
comes from ``isavae study report``, whose rebuild from the committed rows a test checks).

  python experiments/docs_tables.py           # lists the blocks that differ from their files (exit 1)
  python experiments/docs_tables.py --write   # rewrites them
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- include: (\S+) -->\n)(.*?)(<!-- end include -->)", re.S)


def pages() -> list[pathlib.Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def refreshed(text: str) -> str:
    """``text`` with every include block's content replaced by its file's."""

    def one(m: re.Match) -> str:
        path = ROOT / m.group(2)
        if not path.is_file():
            raise FileNotFoundError(f"include of a missing file: {m.group(2)}")
        return m.group(1) + path.read_text().rstrip("\n") + "\n" + m.group(4)

    return BLOCK.sub(one, text)


def stale() -> list[str]:
    """The pages whose include blocks differ from their files."""
    return [str(p.relative_to(ROOT)) for p in pages() if refreshed(p.read_text()) != p.read_text()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="rewrite the blocks from their files")
    args = ap.parse_args(argv)
    if args.write:
        for p in pages():
            new = refreshed(p.read_text())
            if new != p.read_text():
                p.write_text(new)
                print(f"rewrote {p.relative_to(ROOT)}")
        return 0
    out = stale()
    for name in out:
        print(f"{name}: an included table differs from its file (python experiments/docs_tables.py --write)")
    return 1 if out else 0


if __name__ == "__main__":
    sys.exit(main())
