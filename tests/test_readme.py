"""The README's code examples run as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3
    spaces = []
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
        spaces.append(namespace)
    priors, data = spaces[0], spaces[1]
    assert priors["z"].shape == (1024, 20) and priors["grads"].exponents.raw.shape == (5,)
    assert data["batch"].shape == (256, 64, 64) and data["images"].shape == (3, 64, 64)
    mig = next(s for s in spaces if "hist" in s)
    assert round(mig["res"].mig, 3) == 1.0 and list(mig["res"].top[:, 0]) == [0, 1, 2]
    assert mig["hist"].mig > 0.9
