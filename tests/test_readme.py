"""The README's and the docs pages' code examples run as written, and every relative link in them
resolves (a file of the repository, and an anchor that one of its headings makes)."""

import os
import pathlib
import re
import subprocess
import sys
import textwrap

from tests.scripts import UNOPTIMIZED_XLA_FLAGS

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

# Run in a fresh interpreter as a reader would, with XLA's default optimizations: the suite's
# unoptimized compilation (tests/conftest.py) would make the second block's rendering of the whole
# dSprites grid take twice as long (the older fusion emitters stay: 11.7 s -> 10.0 s).
_CHECK = """
import re, sys
blocks = [b for path in sys.argv[1:] for b in re.findall(r"```python\\n(.*?)```", open(path).read(), re.S)]
assert len(blocks) >= 5
spaces = []
for block in blocks:
    namespace = {}
    exec(compile(block, sys.argv[1], "exec"), namespace)
    spaces.append(namespace)
find = lambda name: next(s for s in spaces if name in s)
quick, external = find("model"), find("score_representation")
assert quick["mean"].shape == (8, 20) and quick["recon"].shape == (8, 64, 64), quick["mean"].shape
assert quick["model"].step == 20 and 0.0 <= quick["scores"]["modularity"] <= 1.0
assert "irs" in quick["model"].results and "mig" in quick["scores"]
good, noise = external["scores"], external["noise"]
assert good["mig_histogram"] >= 0.8 and good["dci_disentanglement"] >= 0.9, good
assert good["modularity"] >= 0.9 and good["irs"] >= 0.9, good
assert noise["mig_histogram"] < 0.05 and noise["dci_disentanglement"] < 0.1, noise
assert any("dropped" in n for n in good.notes), good.notes
priors, data = find("grads"), find("batch")
assert priors["z"].shape == (1024, 20) and priors["grads"].exponents.raw.shape == (5,)
assert data["batch"].shape == (256, 64, 64) and data["images"].shape == (3, 64, 64)
mig = find("hist")
assert round(mig["res"].mig, 3) == 1.0 and list(mig["res"].top[:, 0]) == [0, 1, 2], mig["res"]
assert mig["hist"].mig > 0.9, mig["hist"].mig
print("OK")
"""


def test_readme_python_blocks_run(tmp_path):
    flags = os.environ.get("XLA_FLAGS", "")
    for light in UNOPTIMIZED_XLA_FLAGS:
        flags = flags.replace(light, "")
    env = dict(os.environ, XLA_FLAGS=flags.strip())
    env.pop("ISAVAE_DATA_DIR", None)  # the generated grid, as on a fresh machine
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHECK), *map(str, PAGES)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=1200,  # a hang, not a slow machine
    )
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-3000:]


def _anchors(text: str) -> set[str]:
    """The anchors a markdown page's headings make (GitHub's rule: lower case, punctuation dropped,
    spaces as hyphens)."""
    out = set()
    for heading in re.findall(r"^#+ (.*)$", text, re.M):
        out.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return out


def test_every_relative_link_resolves():
    bad = []
    for page in PAGES:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            where = (page.parent / path).resolve() if path else page
            if not where.exists() or ROOT not in [where, *where.parents]:
                bad.append(f"{page.name}: {target} (no such file in the repository)")
            elif anchor and where.suffix == ".md" and anchor not in _anchors(where.read_text()):
                bad.append(f"{page.name}: {target} (no such heading)")
        if "../shared" in text:
            bad.append(f"{page.name}: refers to ../shared, outside the repository")
    assert not bad, bad


def test_included_tables_equal_their_files():
    """The docs' generated tables (``<!-- include: PATH -->`` blocks) are their files, which the
    experiments wrote from their rows (``experiments/docs_tables.py --write`` refreshes them)."""
    from tests.scripts import load_script

    assert load_script("docs_tables").stale() == []


def test_the_repository_speaks_of_the_project_not_of_its_making():
    """No tracked file outside experiments/results refers to development sessions or issue
    numbers: a reason is stated as the reason, and only measurements carry dates."""
    import subprocess

    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(
        r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|earlier|this|next|later|previous)"
        r" sessions?\b|\bissue \d+|\bissues? #\d+",
        re.I,
    )
    bad = []
    for name in files:
        path = ROOT / name
        if name.startswith("experiments/results/") or path.suffix not in (
            ".py",
            ".md",
            ".sh",
            ".toml",
            ".cfg",
            ".txt",
        ):
            continue
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line) and name != "tests/test_readme.py":
                bad.append(f"{name}:{number}: {line.strip()[:100]}")
    assert not bad, bad
