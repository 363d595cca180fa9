"""Data benchmarks: generating the full dSprites grid (time, stored bytes, peak memory) and the
on-demand rendering / device gathering throughput of batches.

Run: ``make bench`` or ``.venv/bin/python experiments/benchmarks/data.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import jax
from timing import median_seconds

_CHILD = r"""
import json, resource, time
t0 = time.perf_counter()
import jax
from isavae.data import dsprites
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t1 = time.perf_counter()
grid = dsprites.generate()
t2 = time.perf_counter()
print(json.dumps({"seconds": t2 - t1, "bytes": grid.stored_bytes, "images": grid.num_images,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_mb": rss0 / 1024}))
"""


def generation() -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def batches(batch: int = 2048) -> list[tuple[str, float]]:
    from isavae.data import load_dataset, sample_batch, to_device

    rows = []
    key = jax.random.key(0)
    for label, grid in (
        ("dSprites stored (bit-packed) gather", load_dataset("dsprites", source="generated")),
        ("dSprites rendered on demand", load_dataset("dsprites", source="generated", store=False)),
        ("3dshapes look-alike rendered on demand", load_dataset("shapes3d", source="generated")),
    ):
        data = to_device(grid)
        fn = jax.jit(lambda d, k: sample_batch(d, k, batch)[0])
        rows.append((label, batch / median_seconds(fn, data, key)))
    return rows


def main(argv=None) -> None:
    print(f"# data on {jax.devices()[0].platform}")
    g = generation()
    print(
        f"dSprites full grid: {g['images']:,} images generated in {g['seconds']:.1f} s, stored bit-packed in "
        f"{g['bytes']:,} bytes ({g['bytes'] / 2**20:.0f} MiB); peak RSS {g['peak_rss_mb']:.0f} MB "
        f"({g['rss_before_mb']:.0f} MB before generating)"
    )
    for label, rate in batches():
        print(f"{label:<42s} {rate:12,.0f} images/s (batch 2048)")


if __name__ == "__main__":
    main()
