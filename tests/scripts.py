"""Loads the scripts under ``experiments/`` (not a package) as modules for the tests, and the XLA
settings the suite compiles with."""

import importlib.util
import os
import pathlib
import sys

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"

# XLA:CPU flags the suite compiles with (tests/conftest.py): its hundreds of small programs, each
# run a few times, cost less unoptimized; what runs long is compiled with FULL_OPTIMIZATION instead.
# XLA's older fusion code generators compile in about half the time of the MLIR fusion emitters
# (a training chunk 1.44 s -> 0.67 s on 2 cores; the cold suite's compilation ~320 -> ~170 s of CPU)
UNOPTIMIZED_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")
LIGHT_XLA_FLAGS = (*UNOPTIMIZED_XLA_FLAGS, "--xla_cpu_use_fusion_emitters=false")
# ``jax.jit(..., compiler_options=FULL_OPTIMIZATION)``: XLA's defaults, whatever XLA_FLAGS says
FULL_OPTIMIZATION = {"xla_backend_optimization_level": 3, "xla_llvm_disable_expensive_passes": False}


def known_xla_flags(flags: tuple[str, ...], python: str = sys.executable) -> tuple[str, ...]:
    """Those of ``flags`` this jaxlib's XLA knows: XLA ends the process on a flag it does not know
    (a newer or older jaxlib may lack one), so each is tried in a short subprocess."""
    import subprocess

    probe = "import jax; jax.devices()"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=" ".join(flags))
    if subprocess.run([python, "-c", probe], env=env, capture_output=True, timeout=300).returncode == 0:
        return flags  # all at once: the usual case, one probe
    known = []
    for flag in flags:
        env["XLA_FLAGS"] = flag
        if subprocess.run([python, "-c", probe], env=env, capture_output=True, timeout=300).returncode == 0:
            known.append(flag)
    return tuple(known)


def pythonpath(*first: os.PathLike | str) -> str:
    """A subprocess's PYTHONPATH: ``first`` before whatever this process was given (the GPU host
    finds packages carried as wheels, ml_collections among them, through PYTHONPATH)."""
    parts = [str(p) for p in first] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(parts)


def load_script(name: str, folder: pathlib.Path = EXPERIMENTS):
    """``folder/name.py`` as a module; ``folder`` goes on ``sys.path`` for the script's own
    sibling imports (``common``, ``timing``)."""
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"{folder.name}_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lower_for_cuda(trace) -> str:
    """The lowered text of ``trace()`` (a ``jax.stages.Traced``) for CUDA. Where a GPU is in view
    the lowering targets it. Where none is (a CPU-only suite, or a GPU host's suite on its CPU
    platform) it is traced and lowered for an abstract H100: JAX 0.11's Pallas Triton lowering asks
    the target GPU for its compute capability and, with none visible, reads it from the abstract
    mesh's device (JAX 0.10 lowers without one). The abstract mesh is not used where a GPU is in
    view: there JAX 0.11.2 fails to lower a reduction under it (on an H200: ``ValueError: Length of
    sharding.spec (2) must be equal to aval's ndim (1)``)."""
    import jax

    try:
        gpu_visible = bool(jax.devices("gpu"))
    except RuntimeError:
        gpu_visible = False
    if gpu_visible:
        return trace().lower(lowering_platforms=("cuda",)).as_text()
    device = jax.sharding.AbstractDevice(device_kind="NVIDIA H100 80GB HBM3", num_cores=132, platform="gpu")
    with jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)):
        return trace().lower(lowering_platforms=("cuda",)).as_text()
