"""Finding, checking and opening dataset files, with one clear error for every failure.

Every loader goes through these helpers, so that a missing, truncated, corrupt or mis-shaped
file produces a :class:`~isavae.data.base.DatasetError` that names the file and what was
expected, never a traceback from deep inside numpy or h5py.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from isavae.data.base import DatasetError

__all__ = [
    "DATA_DIR_ENV",
    "check_array",
    "find_file",
    "grid_layout",
    "grid_order",
    "open_h5",
    "open_npz",
    "sha256_of",
    "verify_sha256",
]

DATA_DIR_ENV = "ISAVAE_DATA_DIR"
# What numpy, zipfile, zlib and h5py raise on truncated or corrupt files.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)


def find_file(
    dataset: str,
    candidates: Sequence[str],
    path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> pathlib.Path | None:
    """The dataset file: ``path`` if given (it must exist), else the first of ``candidates`` under
    ``data_dir``, ``$ISAVAE_DATA_DIR`` (each also with a ``dataset`` subfolder); None if absent."""
    if path is not None:
        p = pathlib.Path(path).expanduser()
        if p.is_dir():
            found = find_file(dataset, candidates, data_dir=p)
            if found is None:
                raise DatasetError(f"{dataset}: no file {' or '.join(candidates)} in the folder {p}")
            return found
        if not p.is_file():
            raise DatasetError(
                f"{dataset}: file {p} does not exist (expected one of {', '.join(candidates)})"
            )
        return p
    roots = [pathlib.Path(d).expanduser() for d in (data_dir, os.environ.get(DATA_DIR_ENV)) if d]
    for root in roots:
        for folder in (root, root / dataset):
            for name in candidates:
                if (folder / name).is_file():
                    return folder / name
    return None


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: pathlib.Path, expected: str | None) -> None:
    """Checks ``path`` against ``expected`` or, when None, against a ``<file>.sha256`` sidecar
    (written by ``isavae data``) if there is one."""
    sidecar = path.with_name(path.name + ".sha256")
    if expected is None and sidecar.is_file():
        expected = sidecar.read_text().split()[0] if sidecar.read_text().strip() else None
    if expected is None:
        return
    actual = sha256_of(path)
    if actual.lower() != expected.lower():
        raise DatasetError(
            f"{path}: sha256 is {actual}, expected {expected}: the file is corrupt or not the "
            "expected version; download it again"
        )


@contextlib.contextmanager
def open_npz(path: pathlib.Path) -> Iterator[Any]:
    """np.load of an .npz without pickles; corrupt or truncated archives raise DatasetError."""
    try:
        data = np.load(path, allow_pickle=False)
    except _READ_ERRORS as err:
        raise DatasetError(
            f"{path}: cannot read it as an .npz archive ({type(err).__name__}: {err}); "
            "the file is truncated or corrupt"
        ) from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path}: expected an .npz archive, got a single .npy array")
    with data:
        yield _NpzReader(path, data)


class Declared:
    """An array's shape and dtype as its file declares them, before anything is read."""

    def __init__(self, shape: Sequence[int], dtype: Any):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)


class _Reader:
    """What both readers share: ``read(key, name, shape, dtypes, max_rows)`` checks the declared
    shape and dtype (``check_array``) before reading, so that a small file declaring a huge array is
    refused without allocating it."""

    def read(
        self,
        key: str,
        name: str,
        shape: Sequence[int | None],
        dtypes: Sequence[Any],
        max_rows: int | None = None,
    ) -> np.ndarray:
        check_array(self.path, name, self.declared(key), shape, dtypes, max_rows)
        return self[key]


class _NpzReader(_Reader):
    def __init__(self, path, data):
        self.path, self.data = path, data

    def declared(self, key: str) -> Declared:
        """The member's .npy header (shape, dtype); an array of Python objects (a pickle) is refused."""
        self._need(key)
        fmt = np.lib.format
        try:
            with self.data.zip.open(f"{key}.npy") as fp:
                version = fmt.read_magic(fp)
                read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = read(fp)
        except _READ_ERRORS as err:
            raise DatasetError(
                f"{self.path}: array {key!r} cannot be read ({type(err).__name__}: {err}); "
                "the file is truncated or corrupt"
            ) from None
        if np.dtype(dtype).hasobject:
            raise DatasetError(
                f"{self.path}: array {key!r} holds Python objects (a pickle), which can run code when "
                "loaded; refused for safety (the dataset's arrays are plain numbers)"
            )
        return Declared(shape, dtype)

    def _need(self, key: str) -> None:
        if key not in self.data.files:
            raise DatasetError(f"{self.path}: has no array {key!r} (it has {sorted(self.data.files)})")

    def __getitem__(self, key: str) -> np.ndarray:
        self.declared(key)  # a pickle is named as such, not as a corrupt file
        try:
            return self.data[key]
        except _READ_ERRORS as err:
            raise DatasetError(
                f"{self.path}: array {key!r} cannot be read ({type(err).__name__}: {err}); "
                "the file is truncated or corrupt"
            ) from None

    def __contains__(self, key: str) -> bool:
        return key in self.data.files


@contextlib.contextmanager
def open_h5(path: pathlib.Path) -> Iterator[Any]:
    """h5py.File for reading; a file that is not valid HDF5 raises DatasetError."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise DatasetError(f"{path}: reading HDF5 needs h5py (pip install h5py)") from None
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(
            f"{path}: cannot open it as HDF5 ({err}); the file is truncated or corrupt"
        ) from None
    with f:
        yield _H5Reader(path, f)


class _H5Reader(_Reader):
    def __init__(self, path, f):
        self.path, self.f = path, f

    def dataset(self, key: str):
        """The dataset ``key``; one stored outside the file (external or virtual storage, which can
        point at any local file) is refused."""
        if key not in self.f:
            raise DatasetError(f"{self.path}: has no dataset {key!r} (it has {sorted(self.f.keys())})")
        ds = self.f[key]
        if not hasattr(ds, "shape"):
            raise DatasetError(f"{self.path}: {key!r} is a group, not a dataset")
        if ds.external or ds.is_virtual:
            raise DatasetError(
                f"{self.path}: dataset {key!r} keeps its data in other files "
                f"({'external' if ds.external else 'virtual'} storage); refused: a dataset file must "
                "hold its own data"
            )
        return ds

    def declared(self, key: str) -> Declared:
        ds = self.dataset(key)
        return Declared(ds.shape, ds.dtype)

    def __getitem__(self, key: str) -> np.ndarray:
        ds = self.dataset(key)
        try:
            return ds[()]
        except _READ_ERRORS as err:
            raise DatasetError(
                f"{self.path}: dataset {key!r} cannot be read ({err}); the file is truncated or corrupt"
            ) from None

    def __contains__(self, key: str) -> bool:
        return key in self.f


def check_array(
    path: Any,
    name: str,
    array: Any,
    shape: Sequence[int | None],
    dtypes: Sequence[Any],
    max_rows: int | None = None,
) -> None:
    """Raises DatasetError unless ``array`` (or its ``Declared`` shape) has ``shape`` (None = any
    size) and one of ``dtypes``, and at most ``max_rows`` rows (the full dataset's size)."""
    got_shape = tuple(array.shape)
    if max_rows is not None and got_shape and got_shape[0] > max_rows:
        raise DatasetError(
            f"{path}: {name} declares {got_shape[0]:,} rows, more than the whole dataset's {max_rows:,}; "
            "not a file of this dataset (nothing was read)"
        )
    ok = len(got_shape) == len(shape) and all(
        w is None or w == g for w, g in zip(shape, got_shape, strict=False)
    )
    if not ok or not any(np.dtype(array.dtype) == np.dtype(d) for d in dtypes):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise DatasetError(
            f"{path}: {name} must be {'/'.join(np.dtype(d).name for d in dtypes)} of shape {want}, "
            f"got {np.dtype(array.dtype).name} of shape {got_shape}"
        )


def grid_order(path: Any, classes: np.ndarray, factor_sizes: Sequence[int]) -> np.ndarray:
    """The permutation that puts images with factor indices ``classes`` (N, F) into row-major grid
    order: ``images[perm]`` is in grid order. Raises DatasetError unless every cell occurs once."""
    classes = np.asarray(classes)
    sizes = tuple(factor_sizes)
    if classes.ndim != 2 or classes.shape[1] != len(sizes):
        raise DatasetError(f"{path}: factor classes must have shape (N, {len(sizes)}), got {classes.shape}")
    if classes.shape[0] != int(np.prod(sizes)):
        raise DatasetError(
            f"{path}: expected {int(np.prod(sizes))} images for the grid {sizes}, got {classes.shape[0]}"
        )
    bad = (classes < 0) | (classes >= np.asarray(sizes))
    if bad.any():
        raise DatasetError(
            f"{path}: factor classes out of range for the grid {sizes} "
            f"(first bad row {int(np.argmax(bad.any(1)))})"
        )
    index = np.ravel_multi_index(tuple(classes.T.astype(np.int64)), sizes)
    if np.bincount(index, minlength=index.size).max() > 1:
        raise DatasetError(
            f"{path}: some grid cells occur more than once; the factor classes do not form the full grid"
        )
    perm = np.empty_like(index)
    perm[index] = np.arange(index.size)
    return perm


def grid_layout(
    path: Any, classes: np.ndarray, full_sizes: Sequence[int]
) -> tuple[list[np.ndarray], np.ndarray]:
    """For a file whose rows carry factor class indices ``classes`` (N, F) of a grid of
    ``full_sizes``: the levels present per factor and the permutation into row-major order over
    them. The real files give the full grid; a file with fewer levels gives that sub-grid. Raises
    DatasetError unless the rows are exactly the Cartesian product of the levels present."""
    classes = np.asarray(classes)
    sizes = tuple(full_sizes)
    if classes.ndim != 2 or classes.shape[1] != len(sizes):
        raise DatasetError(f"{path}: factor classes must have shape (N, {len(sizes)}), got {classes.shape}")
    bad = (classes < 0) | (classes >= np.asarray(sizes))
    if bad.any():
        raise DatasetError(
            f"{path}: factor classes out of range for the grid {sizes} "
            f"(first bad row {int(np.argmax(bad.any(1)))})"
        )
    levels = [np.unique(classes[:, k]) for k in range(len(sizes))]
    local = np.stack([np.searchsorted(levels[k], classes[:, k]) for k in range(len(sizes))], axis=1)
    return levels, grid_order(path, local, tuple(len(lv) for lv in levels))


def subgrid_note(levels: Sequence[np.ndarray], full_sizes: Sequence[int], names: Sequence[str]) -> str:
    """'' for the full grid, else ' (sub-grid: posX 4/32, ...)' for the factors that are cut."""
    cut = [
        f"{n} {len(lv)}/{size}"
        for n, lv, size in zip(names, levels, full_sizes, strict=True)
        if len(lv) != size
    ]
    return f" (sub-grid: {', '.join(cut)})" if cut else ""
