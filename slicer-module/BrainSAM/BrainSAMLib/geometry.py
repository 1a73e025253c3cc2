"""Voxel-coordinate helpers: RAS <-> IJK, prompt slices, views and extents. (Propagation
through neighbouring slices is the library's: binding.Session.propagate_structure.)

Conventions: voxel coordinates are (i, j, k); numpy volumes are indexed [k, j, i]; the
library slices along one voxel axis (`axis`, 0/1/2 for i/j/k), whose numpy axis is 2 - axis.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def ras_to_ijk(ras: Sequence[float], ijk_to_ras: Sequence[Sequence[float]]) -> np.ndarray:
    """Continuous voxel coordinates (i, j, k) of a RAS point."""
    matrix = np.asarray(ijk_to_ras, dtype=np.float64)
    return (np.linalg.inv(matrix) @ np.append(np.asarray(ras, dtype=np.float64), 1.0))[:3]


def ijk_to_ras(ijk: Sequence[float], ijk_to_ras_matrix: Sequence[Sequence[float]]) -> np.ndarray:
    """RAS position of voxel coordinates (i, j, k)."""
    matrix = np.asarray(ijk_to_ras_matrix, dtype=np.float64)
    return (matrix @ np.append(np.asarray(ijk, dtype=np.float64), 1.0))[:3]


def inside(ijk: Sequence[float], shape: Sequence[int]) -> bool:
    """Whether voxel coordinates (i, j, k) round to a voxel of a [k, j, i]-shaped volume."""
    dims = (shape[2], shape[1], shape[0])
    return all(-0.5 <= c < n - 0.5 for c, n in zip(ijk, dims))


def slice_of(ijk: Sequence[float], axis: int) -> int:
    """The slice (along voxel axis `axis`) containing a point."""
    return int(np.floor(float(ijk[axis]) + 0.5))


def box_on_slice(ijk_a: Sequence[float], ijk_b: Sequence[float], axis: int):
    """Two drag corners as a box prompt: both corners put on the first corner's slice
    (a drag in an oblique view may cross slices; the prompt must be on one)."""
    a = [float(c) for c in ijk_a]
    b = [float(c) for c in ijk_b]
    b[axis] = a[axis] = float(slice_of(a, axis))
    return a, b


def coronal_axis(ijk_to_ras) -> int:
    """The voxel axis (0/1/2) closest to anterior-posterior: the library's slicing axis
    for a volume with this IJK-to-RAS matrix (computed here so that it is known while a
    job holds the session)."""
    columns = np.asarray(ijk_to_ras, dtype=np.float64)[:3, :3]
    norms = np.linalg.norm(columns, axis=0)
    norms[norms == 0] = 1.0
    return int(np.argmax(np.abs(columns[1, :]) / norms))


def view_along_axis(slice_to_ras, ijk_to_ras, axis: int, tolerance_degrees: float = 10.0) -> bool:
    """Whether a slice view (its 4x4 SliceToRAS) shows slices of voxel axis `axis`: its
    normal is within `tolerance_degrees` of that axis. A box drawn in such a view lies on
    one slice of the axis."""
    normal = np.asarray(slice_to_ras, dtype=np.float64)[:3, 2]
    column = np.asarray(ijk_to_ras, dtype=np.float64)[:3, axis]
    if not np.linalg.norm(normal) or not np.linalg.norm(column):
        return False
    cosine = abs(float(normal @ column)) / (np.linalg.norm(normal) * np.linalg.norm(column))
    return cosine >= np.cos(np.radians(tolerance_degrees))


def slices_extent(shape: Sequence[int], axis: int, slices: Sequence[int]) -> list:
    """The voxel extent [i0, i1, j0, j1, k0, k1] of a [k, j, i]-shaped volume that covers
    the given slices of voxel axis `axis` (and the whole of the other axes)."""
    dims = (shape[2], shape[1], shape[0])
    extent = []
    for voxel_axis in range(3):
        if voxel_axis == axis:
            extent += [int(min(slices)), int(max(slices))]
        else:
            extent += [0, int(dims[voxel_axis]) - 1]
    return extent


def structure_on_slices(labels: np.ndarray, structure: int, axis: int, slices: Sequence[int]) -> np.ndarray:
    """uint8 mask [k, j, i]: 1 where `labels` is `structure` on the given slices of voxel
    axis `axis`, 0 everywhere else (what a prompt changed, and nothing more)."""
    mask = np.zeros(labels.shape, dtype=np.uint8)
    numpy_axis = 2 - axis
    for slice_index in slices:
        index = [slice(None)] * 3
        index[numpy_axis] = int(slice_index)
        mask[tuple(index)] = labels[tuple(index)] == structure
    return mask
