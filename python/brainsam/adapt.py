"""Adapt to my site: train an adapter of a loaded model from the user's own corrected
segmentations, in memory (brainsam_adapt_* in the C ABI).

    from brainsam.adapt import Adapt
    run = Adapt(model, [(t1_array, t1_ijk_to_ras, seg_array, seg_ijk_to_ras, "freesurfer")],
                minutes=15)
    while run.progress()["state"] == "running": ...   # e.g. from a Qt timer
    run.save("site.safetensors")                        # after it finished

Training runs on a library thread; polling never blocks. The library chooses the
settings from the amount of data (see the core's `train::adapt`); structures absent from
a label map are not trained from it (partial labels).
"""

from __future__ import annotations

import ctypes
import os
from typing import Callable, Optional, Sequence

import numpy as np

from .binding import (
    COORDINATES_RAS,
    DTYPES,
    FINE_TUNE_STATES,
    BrainSAMError,
    Library,
    Model,
    _OwnedHandle,
    _VolumeDesc,
    decompose_ijk_to_ras,
)

#: int32_t (*brainsam_adapt_progress_fn)(void *user_data, uint64_t iteration, uint64_t total,
#: double loss, double validation_dice, double best_dice, double eta_seconds)
_ADAPT_PROGRESS_FN = ctypes.CFUNCTYPE(
    ctypes.c_int32,
    ctypes.c_void_p,
    ctypes.c_uint64,
    ctypes.c_uint64,
    ctypes.c_double,
    ctypes.c_double,
    ctypes.c_double,
    ctypes.c_double,
)


class _AdaptPair(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("image", ctypes.POINTER(_VolumeDesc)),
        ("labels", ctypes.POINTER(_VolumeDesc)),
        ("label_scheme", ctypes.c_char_p),
        ("name", ctypes.c_char_p),
    ]


class _AdaptOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("iterations", ctypes.c_uint64),
        ("minutes", ctypes.c_double),
        ("learning_rate", ctypes.c_double),
        ("seed", ctypes.c_uint64),
        ("device", ctypes.c_char_p),
        ("progress", _ADAPT_PROGRESS_FN),
        ("user_data", ctypes.c_void_p),
    ]


class _AdaptStatus(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("state", ctypes.c_uint32),
        ("iteration", ctypes.c_uint64),
        ("total", ctypes.c_uint64),
        ("loss", ctypes.c_double),
        ("last_validation_dice", ctypes.c_double),
        ("best_validation_dice", ctypes.c_double),
        ("elapsed_seconds", ctypes.c_double),
        ("eta_seconds", ctypes.c_double),
        ("error_status", ctypes.c_uint32),
        ("error_message", ctypes.c_char * 512),
    ]


_PROTOTYPES = {
    "brainsam_adapt_start": [
        ctypes.c_void_p,
        ctypes.POINTER(_AdaptPair),
        ctypes.c_size_t,
        ctypes.POINTER(_AdaptOptions),
        ctypes.POINTER(ctypes.c_void_p),
    ],
    "brainsam_adapt_progress": [ctypes.c_void_p, ctypes.POINTER(_AdaptStatus)],
    "brainsam_adapt_cancel": [ctypes.c_void_p],
    "brainsam_adapt_wait": [ctypes.c_void_p],
    "brainsam_adapt_save": [ctypes.c_void_p, ctypes.c_char_p],
    "brainsam_adapt_free": [ctypes.c_void_p],
}


def _declare(library: Library) -> None:
    lib = library.raw()
    for name, argtypes in _PROTOTYPES.items():
        if hasattr(lib, name):
            function = getattr(lib, name)
            function.argtypes = argtypes
            function.restype = None if name.endswith("_free") else ctypes.c_uint32


def _volume_desc(array: np.ndarray, ijk_to_ras, what: str):
    """A descriptor of `array` ([k, j, i], Slicer's arrayFromVolume) with its 4x4
    IJK-to-RAS matrix; returns (descriptor, the contiguous array it points into)."""
    array = np.asarray(array)
    if array.ndim != 3:
        raise BrainSAMError(1, f"{what} must be 3-D indexed [k, j, i], got shape {array.shape}")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    native = array.dtype.newbyteorder("=") if array.dtype.byteorder not in "=|" else array.dtype
    code = DTYPES.get(np.dtype(native))
    if code is None:
        raise BrainSAMError(1, f"{what} dtype {array.dtype} is not supported")
    array = np.ascontiguousarray(array, dtype=native)
    spacing, origin, direction = decompose_ijk_to_ras(ijk_to_ras)
    desc = _VolumeDesc()
    desc.struct_size = ctypes.sizeof(_VolumeDesc)
    desc.data = array.ctypes.data_as(ctypes.c_void_p)
    desc.data_len = array.nbytes
    desc.dtype = code
    desc.dims[:] = [array.shape[2], array.shape[1], array.shape[0]]
    desc.spacing[:] = [float(x) for x in np.ravel(spacing)]
    desc.origin[:] = [float(x) for x in np.ravel(origin)]
    desc.direction[:] = [float(x) for x in np.asarray(direction, dtype=float).reshape(9)]
    desc.coordinates = COORDINATES_RAS
    return desc, array


class Adapt(_OwnedHandle):
    """An adaptation of `model` (loaded from a checkpoint, without adapter) on `pairs`:
    each pair is (image, image_ijk_to_ras, labels, labels_ijk_to_ras, label_scheme[, name])
    with arrays indexed [k, j, i]; label_scheme "classes" (BrainSAM ids 0..12),
    "freesurfer", "aal", ... or a mapping file. Every pair is checked here (BrainSAMError
    names the pair and the problem). Numbers left at 0/None are chosen by the library.
    `progress_callback(dict)` (optional) runs on the training thread; a truthy return
    cancels. close() cancels a running run and waits for its thread."""

    _free_function = "brainsam_adapt_free"

    def __init__(
        self,
        model: Model,
        pairs: Sequence[Sequence],
        minutes: float = 0.0,
        iterations: int = 0,
        learning_rate: float = 0.0,
        seed: int = 0,
        device: str | None = None,
        progress_callback: Optional[Callable[[dict], object]] = None,
    ):
        self.library = model.library
        _declare(self.library)
        self._handle = None
        if not pairs:
            raise BrainSAMError(1, "no pairs given: adapting needs at least one image with labels")
        keep = []  # arrays and strings referenced by the descriptors, until the call returns
        c_pairs = (_AdaptPair * len(pairs))()
        for index, pair in enumerate(pairs):
            if len(pair) not in (5, 6):
                raise BrainSAMError(
                    1,
                    f"pairs[{index}] must be (image, image_ijk_to_ras, labels, labels_ijk_to_ras,"
                    " label_scheme[, name])",
                )
            image, image_matrix, labels, labels_matrix, scheme = pair[:5]
            name = pair[5] if len(pair) == 6 else f"pair {index + 1}"
            image_desc, image_array = _volume_desc(image, image_matrix, f"pairs[{index}] image")
            labels_desc, labels_array = _volume_desc(
                labels, labels_matrix, f"pairs[{index}] labels"
            )
            scheme_bytes = os.fsencode(scheme) if scheme else None
            name_bytes = str(name).encode("utf-8")
            keep += [image_desc, image_array, labels_desc, labels_array, scheme_bytes, name_bytes]
            c_pairs[index].struct_size = ctypes.sizeof(_AdaptPair)
            c_pairs[index].image = ctypes.pointer(image_desc)
            c_pairs[index].labels = ctypes.pointer(labels_desc)
            c_pairs[index].label_scheme = scheme_bytes
            c_pairs[index].name = name_bytes
        options = _AdaptOptions()
        options.struct_size = ctypes.sizeof(_AdaptOptions)
        options.iterations = int(iterations)
        options.minutes = float(minutes)
        options.learning_rate = float(learning_rate)
        options.seed = int(seed)
        device_bytes = device.encode("utf-8") if device else None
        options.device = device_bytes
        self._callback = None
        if progress_callback is not None:

            def trampoline(_user, iteration, total, loss, validation, best, eta):
                try:
                    return 1 if progress_callback(
                        {
                            "iteration": int(iteration),
                            "total": int(total),
                            "loss": float(loss),
                            "validation_dice": float(validation),
                            "best_validation_dice": float(best),
                            "eta_seconds": float(eta),
                        }
                    ) else 0
                except Exception:  # noqa: BLE001 - nothing may propagate into C
                    return 0

            # Kept on the object: ctypes frees the thunk with it, and the run may call it
            # until it ends (close() waits for the thread).
            self._callback = _ADAPT_PROGRESS_FN(trampoline)
            options.progress = self._callback
        handle = ctypes.c_void_p()
        self.library._call(
            "brainsam_adapt_start",
            model.handle(),
            c_pairs,
            ctypes.c_size_t(len(pairs)),
            ctypes.byref(options),
            ctypes.byref(handle),
        )
        del keep
        self._handle = handle

    def _live(self) -> ctypes.c_void_p:
        if self._handle is None:
            raise BrainSAMError(6, "the adaptation is closed")
        return self._handle

    def progress(self) -> dict:
        """state ("running", "finished", "failed", "cancelled"), iteration, total, loss,
        last_validation_dice, best_validation_dice (NaN: none yet), elapsed_seconds,
        eta_seconds, error_status and error_message (set when failed)."""
        status = _AdaptStatus()
        status.struct_size = ctypes.sizeof(_AdaptStatus)
        self.library._call("brainsam_adapt_progress", self._live(), ctypes.byref(status))
        return {
            "state": FINE_TUNE_STATES.get(status.state, f"unknown {status.state}"),
            "iteration": int(status.iteration),
            "total": int(status.total),
            "loss": float(status.loss),
            "last_validation_dice": float(status.last_validation_dice),
            "best_validation_dice": float(status.best_validation_dice),
            "elapsed_seconds": float(status.elapsed_seconds),
            "eta_seconds": float(status.eta_seconds),
            "error_status": int(status.error_status),
            "error_message": status.error_message.decode("utf-8", "replace"),
        }

    def cancel(self) -> None:
        """Ask the run to stop after its current iteration (no adapter is produced)."""
        self.library._call("brainsam_adapt_cancel", self._live())

    def wait(self) -> str:
        """Block until the run ends: "finished" or "cancelled"; BrainSAMError if it failed."""
        status = self.library._function("brainsam_adapt_wait")(self._live())
        if status == 8:  # CANCELLED
            return "cancelled"
        self.library._check(status)
        return "finished"

    def save(self, path: str | os.PathLike) -> None:
        """Write the adapter of the finished run to `path` atomically."""
        self.library._call("brainsam_adapt_save", self._live(), os.fsencode(path))
