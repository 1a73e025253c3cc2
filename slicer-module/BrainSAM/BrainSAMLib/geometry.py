"""Voxel-coordinate helpers: RAS <-> IJK, prompt slices, propagation order and boxes.

Conventions: voxel coordinates are (i, j, k); numpy volumes are indexed [k, j, i]; the
library slices along one voxel axis (`axis`, 0/1/2 for i/j/k), whose numpy axis is 2 - axis.
"""

from __future__ import annotations

from typing import Generator, Iterator, Optional, Sequence

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


def propagation_runs(start: int, slice_count: int, direction: str, max_slices: int, first: int = 0):
    """Slices to visit when propagating from `start`: a list of runs, each a list of
    (slice, previous_slice) in order outward from `start`, within slices
    `first`..`slice_count - 1`. `direction` is "forward" (increasing index), "backward" or
    "both"; each run has at most `max_slices` steps."""
    if direction not in ("forward", "backward", "both"):
        raise ValueError(f"direction must be forward, backward or both, got {direction!r}")
    if not first <= start < slice_count:
        raise ValueError(f"start slice {start} outside {first}..{slice_count - 1}")
    runs = []
    for step, name in ((1, "forward"), (-1, "backward")):
        if direction in (name, "both"):
            stop = start + step * (max_slices + 1)
            stop = min(stop, slice_count) if step > 0 else max(stop, first - 1)
            runs.append([(s, s - step) for s in range(start + step, stop, step)])
    return runs


def slice_mask(labels: np.ndarray, structure: int, axis: int, slice_index: int) -> np.ndarray:
    """2-D boolean mask of `structure` on one slice; rows/cols are the remaining numpy axes."""
    return np.take(labels, slice_index, axis=2 - axis) == structure


def box_from_mask(
    labels: np.ndarray, structure: int, axis: int, from_slice: int, to_slice: int, margin: int = 2
) -> Optional[tuple]:
    """The box prompt (ijk_a, ijk_b) for slice `to_slice`: the bounding box of `structure`
    on `from_slice`, grown by `margin` voxels and clipped to the volume; None when the
    structure is absent there (propagation stops)."""
    mask = slice_mask(labels, structure, axis, from_slice)
    if not mask.any():
        return None
    dims = (labels.shape[2], labels.shape[1], labels.shape[0])  # (i, j, k) sizes
    in_plane = [a for a in (0, 1, 2) if a != axis]  # voxel axes of mask, in ijk order
    # np.take removed numpy axis 2 - axis; the remaining numpy axes are the in-plane voxel
    # axes in decreasing order (numpy is [k, j, i]).
    rows, cols = np.nonzero(mask)
    by_axis = {in_plane[1]: rows, in_plane[0]: cols}
    a, b = [0.0] * 3, [0.0] * 3
    for voxel_axis in in_plane:
        values = by_axis[voxel_axis]
        a[voxel_axis] = float(max(values.min() - margin, 0))
        b[voxel_axis] = float(min(values.max() + margin, dims[voxel_axis] - 1))
    a[axis] = b[axis] = float(to_slice)
    return a, b


def propagation_plan(
    session,
    structure: int,
    start: int,
    direction: str = "both",
    max_slices: int = 1000,
    margin: int = 2,
    progress=None,
) -> Generator[int, None, tuple]:
    """Propagation of `structure` from slice `start` through its neighbours, as a
    generator the caller drives: for each next slice it sets a box prompt from the
    previous slice's mask, then yields the slice; the caller segments it (at once, or as a
    library job) and resumes the generator, which reads the labels back. A run stops at
    the first slice where the structure comes out empty or at the edge of the region of
    interest. `progress(done, total)` returning truthy stops early. Returns the slices done.

    When the library does propagation itself, the caller replaces this whole plan by one
    library job; the callers' interface (slices done, progress) stays the same."""
    axis = session.slicing_axis()
    # The library's region of interest, where prompts may go (whole volume without one).
    first, last = session.slice_range() if hasattr(session, "slice_range") else (0, session.slice_count() - 1)
    runs = propagation_runs(start, last + 1, direction, max_slices, first)
    total = sum(len(run) for run in runs)
    done = []
    labels = session.copy_labels()
    for run in runs:
        for slice_index, previous in run:
            box = box_from_mask(labels, structure, axis, previous, slice_index, margin)
            if box is None:
                break
            session.clear_prompts(structure, slice_index)
            session.add_box(structure, *box)
            yield slice_index
            labels = session.copy_labels(labels)
            done.append(slice_index)
            if progress is not None and progress(len(done), total):
                return tuple(done)
    return tuple(done)


def iterate_propagation(
    session,
    structure: int,
    start: int,
    direction: str = "both",
    max_slices: int = 1000,
    margin: int = 2,
    progress=None,
) -> Iterator[int]:
    """propagation_plan() run synchronously with a session (binding.Session or anything
    with the same methods): yields each slice once segmented."""
    plan = propagation_plan(session, structure, start, direction, max_slices, margin, progress)
    for slice_index in plan:
        session.segment_structure(structure, slice_index)
        yield slice_index


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
