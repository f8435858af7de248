"""Point clouds in ``.npz`` files (like the gsplat test asset ``garden_points.npz``).

Arrays: ``means3d`` [N, 3] float, ``colors`` [N, 3] uint8 (or float in [0, 1]); optional
``viewmats`` [C, 4, 4] world-to-camera (OpenCV), ``Ks`` [C, 3, 3], ``width``, ``height``.
Each point becomes an isotropic Gaussian whose size follows the local point spacing: the
standard deviation is the root mean square distance to its 3 nearest neighbours (the
initialisation of the 3DGS paper), and its opacity is ``POINT_OPACITY``.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import GscacheError
from ._zip import ZIP_ERRORS
from .limits import check_decoded_size
from ..sh import SH_C0
from .record import Scene, make_scene

POINT_OPACITY = 0.9
NEIGHBOURS = 3
POINT_BYTES = 160  # what the reader and the Scene hold per point (float64 copy, k-d tree, five fields)


def _load(path: str) -> "np.lib.npyio.NpzFile":
    try:
        return np.load(path, allow_pickle=False)
    except ZIP_ERRORS as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise GscacheError(f"{path}: cannot read the .npz archive: {exc}") from None


def _declared(npz, key: str, path: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the member's .npy header, read before the array itself."""
    try:
        with npz.zip.open(f"{key}.npy") as f:
            version = np.lib.format.read_magic(f)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = header(f)
    except ZIP_ERRORS as exc:  # a damaged member or .npy header
        raise GscacheError(f"{path}: array '{key}': damaged .npy member header "
                           f"(expected a numpy 'descr'/'shape' header): {exc}") from None
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise GscacheError(f"{path}: array '{key}' has dtype {dtype}; expected plain numbers")
    check_decoded_size(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, path, f"array '{key}' {tuple(shape)}")
    return shape, dtype


def _array(npz, key: str, path: str) -> np.ndarray:
    if key not in npz.files:
        raise GscacheError(f"{path}: .npz has no '{key}' array (has {sorted(npz.files)})")
    try:
        _declared(npz, key, path)
        return npz[key]
    except GscacheError:
        raise
    except ZIP_ERRORS as exc:
        raise GscacheError(f"{path}: cannot read array '{key}': {exc}") from None


def nearest_neighbour_scale(points: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """RMS distance of each point to its k nearest other points, [N] float32."""
    n = points.shape[0]
    if n < 2:
        return np.full(n, 0.01, np.float32)
    from scipy.spatial import cKDTree  # a k-d tree beats a hand-written O(N^2) search

    k = min(k, n - 1)
    dist, _ = cKDTree(points).query(points, k=k + 1)  # column 0 is the point itself
    rms = np.sqrt((dist[:, 1:] ** 2).mean(axis=1))
    # Duplicate points have zero spacing; give them the smallest positive spacing seen.
    positive = rms[rms > 0]
    floor = positive.min() if positive.size else 0.01
    return np.maximum(rms, floor).astype(np.float32)


def read_npz_points(path: str | os.PathLike) -> Scene:
    """Read a point-cloud .npz into isotropic Gaussians (SH degree 0)."""
    path = str(path)
    with _load(path) as npz:
        # Shapes from the headers first: a mismatch or an oversized cloud is refused before any
        # array is inflated (the scene built from N points holds about 160 bytes per point).
        for key in ("means3d", "colors"):
            if key not in npz.files:
                raise GscacheError(f"{path}: .npz has no '{key}' array (has {sorted(npz.files)})")
        shape, _ = _declared(npz, "means3d", path)
        if len(shape) != 2 or shape[1] != 3:
            raise GscacheError(f"{path}: 'means3d' has shape {tuple(shape)}, expected (N, 3)")
        color_shape, _ = _declared(npz, "colors", path)
        if tuple(color_shape) != tuple(shape):
            raise GscacheError(f"{path}: 'colors' has shape {tuple(color_shape)}, expected {tuple(shape)}")
        check_decoded_size(shape[0] * POINT_BYTES, path, f"a point cloud of {shape[0]} points")
        means = np.asarray(_array(npz, "means3d", path), dtype=np.float64)
        colors = _array(npz, "colors", path)
    rgb = colors.astype(np.float32) / 255.0 if colors.dtype == np.uint8 else colors.astype(np.float32)
    finite = np.isfinite(means).all(axis=1)
    scale = np.full(len(means), np.nan, np.float32)  # NaN rows are dropped (and counted) by make_scene
    scale[finite] = nearest_neighbour_scale(means[finite])
    n = len(means)
    quats = np.tile(np.array([1.0, 0.0, 0.0, 0.0], np.float32), (n, 1))
    sh = ((rgb - 0.5) / SH_C0)[:, None, :]
    return make_scene(means, quats, np.repeat(scale[:, None], 3, axis=1), np.full(n, POINT_OPACITY), sh, source=path)


def read_npz_cameras(path: str | os.PathLike):
    """The cameras stored beside the points (``viewmats``, ``Ks``, ``width``, ``height``)."""
    from ..camera import Camera, Intrinsics

    path = str(path)
    with _load(path) as npz:
        viewmats = _array(npz, "viewmats", path)
        Ks = _array(npz, "Ks", path)
        width = int(_array(npz, "width", path))
        height = int(_array(npz, "height", path))
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4) or Ks.shape != (len(viewmats), 3, 3):
        raise GscacheError(f"{path}: 'viewmats' {viewmats.shape} and 'Ks' {Ks.shape} must be [C,4,4] and [C,3,3]")
    cams = []
    for i, (T, K) in enumerate(zip(viewmats, Ks)):
        intr = Intrinsics(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), width, height)
        cams.append(Camera(intr, T))
    return cams
