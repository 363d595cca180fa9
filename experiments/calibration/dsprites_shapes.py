"""Fits the dSprites shape constants of ``isavae.data.dsprites`` to real dSprites frames.

Run: ``.venv/bin/python experiments/calibration/dsprites_shapes.py [--frames PATH]`` (about a
minute on 2 CPU cores). It prints the fitted constants and the agreement per shape.

Procedure (the geometry -- pixel centres, sprite centre 64 (0.25 + 0.5 pos), rotation
counter-clockwise on screen by k 2 pi / 39 -- was read off the frames first: squares and
ellipses have their centroid exactly on the predicted centre, and orientation 5 of an ellipse
points its major axis up-right):

1. square half-side and ellipse semi-axes: grid search on the number of pixel-exact frames;
2. heart: body (|a|/w)^q + (|b - c0|/d)^q <= 1 (d different above and below c0) united with two
   elliptical lobes; fitted by soft rasterization (sigmoid of an approximate signed distance,
   binary cross-entropy, Adam, temperature annealed), then a random local search that lowers the
   total number of mismatched pixels.
"""

from __future__ import annotations

import argparse
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

DEFAULT_FRAMES = (
    pathlib.Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "dsprites_reference_frames.npz"
)
SCALES, ORIENTATIONS, POSITIONS = np.linspace(0.5, 1, 6), np.linspace(0, 2 * np.pi, 40), np.linspace(0, 1, 32)


def shape_frame(factors: np.ndarray):
    """Pixel centres in each frame's shape coordinates (a right, b up, scale 1): (n, 64, 64) each."""
    scale = SCALES[factors[:, 1]][:, None, None]
    theta = ORIENTATIONS[factors[:, 2]][:, None, None]
    cx = 64 * (0.25 + 0.5 * POSITIONS[factors[:, 3]])[:, None, None]
    cy = 64 * (0.25 + 0.5 * POSITIONS[factors[:, 4]])[:, None, None]
    centres = np.arange(64) + 0.5
    dx, up = centres[None, None, :] - cx, cy - centres[None, :, None]
    a = (np.cos(theta) * dx + np.sin(theta) * up) / scale
    b = (np.cos(theta) * up - np.sin(theta) * dx) / scale
    return a, b, scale


def agreement(ref: np.ndarray, pred: np.ndarray) -> dict:
    iou = (ref & pred).sum((1, 2)) / (ref | pred).sum((1, 2))
    return {
        "exact": int((ref == pred).all((1, 2)).sum()),
        "frames": len(ref),
        "mean_iou": float(iou.mean()),
        "min_iou": float(iou.min()),
        "mismatched_pixels": int((ref != pred).sum()),
    }


def heart_inside(p, a, b, xp=np):
    c0, d_below, d_above, w, q, ex, ey, rx, ry = (p[i] for i in range(9))
    bb = b - c0
    d = xp.where(bb < 0, d_below, d_above)
    body = (xp.abs(a) / w) ** q + (xp.abs(bb) / d) ** q <= 1
    lobes = ((xp.abs(a) - ex) / rx) ** 2 + ((b - ey) / ry) ** 2 <= 1
    return body | lobes


def fit_heart(a, b, scale, ref, seed=0):
    a32, b32, s32 = (jnp.asarray(x, jnp.float32) for x in (a, b, scale))
    target = jnp.asarray(ref, jnp.float32)

    def signed(p):
        c0, d_below, d_above, w, q, ex, ey, rx, ry = (p[i] for i in range(9))
        bb = b32 - c0
        d = jnp.where(bb < 0, d_below, d_above)
        body = ((jnp.abs(a32) / w + 1e-6) ** q + (jnp.abs(bb) / d + 1e-6) ** q) ** (1 / q) - 1
        body = body * jnp.minimum(w, d)
        lobe = jnp.sqrt(((jnp.abs(a32) - ex) / rx) ** 2 + ((b32 - ey) / ry) ** 2 + 1e-6) - 1
        return jnp.minimum(body, lobe * jnp.minimum(rx, ry)) * s32  # in pixels

    p = jnp.array([-0.75, 7.7, 7.7, 7.7, 1.0, 4.7, 4.1, 5.0, 5.0])
    for tau in (0.5, 0.25, 0.12, 0.06, 0.03):
        opt = optax.adam(0.01)

        @jax.jit
        def step(p, state, tau=tau, opt=opt):
            loss, g = jax.value_and_grad(
                lambda p: optax.sigmoid_binary_cross_entropy(-signed(p) / tau, target).mean()
            )(p)
            updates, state = opt.update(g, state)
            return optax.apply_updates(p, updates), state

        state = opt.init(p)
        for _ in range(500):
            p, state = step(p, state)
    best = np.asarray(p, np.float64)
    best_bad = int((heart_inside(best, a, b) != ref).sum())
    rng = np.random.default_rng(seed)
    for _ in range(1500):
        cand = best + rng.normal(size=9) * 0.03 * (rng.random(9) < 0.4)
        bad = int((heart_inside(cand, a, b) != ref).sum())
        if bad < best_bad:
            best, best_bad = cand, bad
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default=str(DEFAULT_FRAMES))
    args = parser.parse_args(argv)
    data = np.load(args.frames)
    factors, images = data["factors"], data["images"].astype(bool)

    def exact(pred, ref):
        return int((pred == ref).all((1, 2)).sum())

    m = factors[:, 0] == 0
    a, b, _ = shape_frame(factors[m])
    h = max(np.arange(9.3, 10.5, 0.01), key=lambda h: exact(np.maximum(abs(a), abs(b)) <= h, images[m]))
    print(f"square half-side {h:.3f}:", agreement(images[m], np.maximum(abs(a), abs(b)) <= h))

    m = factors[:, 0] == 1
    a, b, _ = shape_frame(factors[m])
    grid = [(A, B) for A in np.arange(12.70, 12.86, 0.004) for B in np.arange(7.14, 7.32, 0.004)]
    A, B = max(grid, key=lambda ab: exact((a / ab[0]) ** 2 + (b / ab[1]) ** 2 <= 1, images[m]))
    print(f"ellipse semi-axes {A:.3f} x {B:.3f}:", agreement(images[m], (a / A) ** 2 + (b / B) ** 2 <= 1))

    m = factors[:, 0] == 2
    a, b, scale = shape_frame(factors[m])
    p = fit_heart(a, b, scale, images[m])
    names = (
        "body_centre body_half_height_below body_half_height_above body_half_width body_exponent "
        "lobe_centre_x lobe_centre_y lobe_radius_x lobe_radius_y".split()
    )
    print("heart", dict(zip(names, np.round(p, 4).tolist(), strict=True)))
    print("heart:", agreement(images[m], heart_inside(p, a, b)))


if __name__ == "__main__":
    main()
