"""ctypes + numpy binding to libbrainsam's C ABI (include/brainsam.h).

Importable outside Slicer; the Slicer module and Segment Editor effect use only this.
Every C call is checked: a non-zero status raises BrainSAMError carrying the library's
message, so nothing fails silently and nothing crashes the host.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
import threading
from pathlib import Path
from typing import Callable, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from . import _runtime

#: The C ABI version this binding was written for (BRAINSAM_ABI_VERSION in brainsam.h).
ABI_VERSION = 1

#: brainsam_status_name of the library loaded first (status names come from the
#: library, not from a table here); None until a library is loaded.
_status_name_function: Optional[Callable[[int], bytes]] = None
#: Set while status_name() loads the default library, so that a failure to load it
#: (itself a BrainSAMError) does not try again.
_naming = threading.local()


def status_name(status: int) -> str:
    """The name of a brainsam_status number without its BRAINSAM_STATUS_ prefix (e.g.
    "NULL_POINTER"), as the library names it (the default library is loaded if none is
    yet); "UNKNOWN(n)" for numbers it does not know or when no library can be loaded."""
    if _status_name_function is None and not getattr(_naming, "busy", False):
        _naming.busy = True
        try:
            load_library()
        except Exception:  # noqa: BLE001 - any failure: the number is shown instead
            pass
        finally:
            _naming.busy = False
    if _status_name_function is not None:
        name = _status_name_function(int(status)).decode()
        name = name.removeprefix("BRAINSAM_STATUS_")
        if name != "UNKNOWN":
            return name
    return f"UNKNOWN({status})"


class BrainSAMError(RuntimeError):
    """A BrainSAM call failed; `status` is the C status number, `status_name` its name
    (from the library, looked up when shown)."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message
        super().__init__(message)

    @property
    def status_name(self) -> str:
        """The status's name, e.g. "INVALID_ARGUMENT"."""
        return status_name(self.status)

    def __str__(self) -> str:
        return f"{self.message} [{self.status_name}]"


class _RuntimeInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("libtorch_version", ctypes.c_char * 32),
        ("cuda_available", ctypes.c_int32),
        ("cuda_device_count", ctypes.c_int32),
        ("cpu_threads", ctypes.c_int32),
    ]


#: brainsam_device values (names parse through the library: Library.parse_device).
DEVICES = {"auto": 0, "cpu": 1, "cuda": 2}

#: brainsam_precision values (of the image encoder; masks are always computed in fp32;
#: names parse through the library: Library.parse_precision).
PRECISIONS = {"auto": 0, "fp32": 1, "bf16": 2, "fp16": 3}

#: brainsam_dtype values by numpy dtype (native byte order).
DTYPES = {
    np.dtype(np.uint8): 0,
    np.dtype(np.int8): 1,
    np.dtype(np.uint16): 2,
    np.dtype(np.int16): 3,
    np.dtype(np.uint32): 4,
    np.dtype(np.int32): 5,
    np.dtype(np.float32): 6,
    np.dtype(np.float64): 7,
}

#: brainsam_coordinates values.
COORDINATES_LPS = 0
COORDINATES_RAS = 1

#: Structure (class) ids accepted by prompts and statistics.
STRUCTURE_IDS = range(1, 13)


class _ModelOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("checkpoint_path", ctypes.c_char_p),
        ("adapter_path", ctypes.c_char_p),
        ("device", ctypes.c_uint32),
        ("device_index", ctypes.c_uint32),
        ("precision", ctypes.c_uint32),
    ]


#: Embedding-cache places of brainsam_session_options.
EMBEDDING_CACHES = {"auto": 0, "device": 1, "host": 2}


class _SessionOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
        ("no_mirror_averaging", ctypes.c_uint32),
        ("no_cleanup", ctypes.c_uint32),
        ("embedding_cache", ctypes.c_uint32),
        ("no_shift_averaging", ctypes.c_uint32),
        ("no_view_averaging", ctypes.c_uint32),
    ]


class _StructureStats(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("qc", ctypes.c_uint32),
        ("voxels", ctypes.c_uint64),
        ("volume_mm3", ctypes.c_double),
        ("confidence", ctypes.c_double),
    ]


class _StructureInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("class_id", ctypes.c_uint32),
        ("freesurfer_code", ctypes.c_int32),
        ("colour", ctypes.c_uint8 * 3),
        ("name", ctypes.c_char_p),
        ("short_name", ctypes.c_char_p),
        ("freesurfer_name", ctypes.c_char_p),
    ]


class _VolumeDesc(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_uint32),
        ("dims", ctypes.c_uint64 * 3),
        ("spacing", ctypes.c_double * 3),
        ("origin", ctypes.c_double * 3),
        ("direction", ctypes.c_double * 9),
        ("coordinates", ctypes.c_uint32),
        ("data_len", ctypes.c_uint64),
    ]


#: int32_t (*brainsam_fine_tune_progress_fn)(void *user_data, uint64_t iteration,
#: uint64_t total, double loss, double lr, double validation_dice)
_FINE_TUNE_PROGRESS_FN = ctypes.CFUNCTYPE(
    ctypes.c_int32,
    ctypes.c_void_p,
    ctypes.c_uint64,
    ctypes.c_uint64,
    ctypes.c_double,
    ctypes.c_double,
    ctypes.c_double,
)


class _FineTuneOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("resume", ctypes.c_uint32),
        ("progress", _FINE_TUNE_PROGRESS_FN),
        ("user_data", ctypes.c_void_p),
        ("overwrite", ctypes.c_uint32),
    ]


#: BRAINSAM_FINE_TUNE_MESSAGE_SIZE in brainsam.h.
_FINE_TUNE_MESSAGE_SIZE = 512

#: Input-QC flags of Session.structure_qc (BRAINSAM_QC_* in brainsam.h).
QC_VOLUME_LOW = 1
QC_VOLUME_HIGH = 2
QC_LOW_CONFIDENCE = 4


class _FineTuneStatus(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("state", ctypes.c_uint32),
        ("iteration", ctypes.c_uint64),
        ("total", ctypes.c_uint64),
        ("loss", ctypes.c_double),
        ("lr", ctypes.c_double),
        ("last_validation_dice", ctypes.c_double),
        ("best_validation_dice", ctypes.c_double),
        ("error_status", ctypes.c_uint32),
        ("error_message", ctypes.c_char * _FINE_TUNE_MESSAGE_SIZE),
    ]


#: brainsam_fine_tune_state values.
FINE_TUNE_STATES = {0: "running", 1: "finished", 2: "failed", 3: "cancelled"}
#: brainsam_fine_tune_output values by name.
FINE_TUNE_OUTPUTS = {"model": 0, "adapter": 1, "best_model": 2}

#: int32_t (*brainsam_progress_fn)(void *user_data, uint64_t done, uint64_t total)
_PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64)
#: void (*brainsam_log_fn)(void *user_data, uint32_t level, const char *message)
_LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p)

#: Names of the log levels of brainsam_log_fn.
LOG_LEVELS = {1: "error", 2: "warn", 3: "info", 4: "debug", 5: "trace"}


def _library_file_name() -> str:
    """libbrainsam's file name on this platform."""
    if sys.platform == "win32":
        return "brainsam.dll"
    if sys.platform == "darwin":
        return "libbrainsam.dylib"
    return "libbrainsam.so"


def _find_library(explicit: str | os.PathLike | None) -> Path:
    """The libbrainsam.so to load: the explicit path, else $BRAINSAM_LIBRARY, else the one
    inside this package (wheel installs), else the Slicer extension's lib folder, else the
    system search path. A path the user named (argument or environment) must exist: it is
    never silently replaced by another."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise BrainSAMError(3, f"BrainSAM library {path} does not exist")
        return path
    env = os.environ.get("BRAINSAM_LIBRARY")
    if env:
        path = Path(env)
        if not path.is_file():
            raise BrainSAMError(3, f"BRAINSAM_LIBRARY={env} does not exist")
        return path
    bundled = _runtime.bundled_library()
    if bundled is not None:
        return bundled
    here = Path(__file__).resolve().parent
    # Slicer extension layout: the extension's CMake installs the library into Slicer's
    # third-party library folder (lib/Slicer-X.Y), two levels above this package; a lib
    # folder next to the module (source checkout used as "Additional module path") also works.
    name = _library_file_name()
    tried = []
    for up in list(here.parents)[:3]:
        tried += [up / name, up / "lib" / name]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    found = ctypes.util.find_library("brainsam")
    if found:
        return Path(found)
    raise BrainSAMError(
        3,
        "libbrainsam.so not found; set BRAINSAM_LIBRARY to its path or install the BrainSAM "
        "extension (looked at: " + ", ".join(str(p) for p in tried) + " and the system path)",
    )


def _load_with_torch(chosen: Path) -> ctypes.CDLL:
    """Load libbrainsam, giving it libtorch first where it cannot find libtorch itself: the
    wheel's library (no rpath to any libtorch) and any library when BRAINSAM_TORCH_DIR is
    set; a library that fails to load for want of libtorch gets one found the same way.
    A missing or wrong libtorch raises an error naming what to install."""
    preloaded = False
    if os.environ.get("BRAINSAM_TORCH_DIR") or chosen == _runtime.bundled_library():
        try:
            _runtime.preload_torch(_runtime.find_torch())
        except _runtime.TorchNotFound as error:
            raise BrainSAMError(3, f"cannot load {chosen}: {error}") from None
        preloaded = True
    try:
        return ctypes.CDLL(str(chosen))
    except OSError as error:
        if preloaded or not re.search(r"lib(torch|c10)", str(error)):
            raise BrainSAMError(3, f"cannot load {chosen}: {error}") from error
        try:
            _runtime.preload_torch(_runtime.find_torch())
        except _runtime.TorchNotFound as torch_error:
            raise BrainSAMError(3, f"cannot load {chosen} ({error}): {torch_error}") from None
    try:
        return ctypes.CDLL(str(chosen))
    except OSError as error:
        raise BrainSAMError(3, f"cannot load {chosen}: {error}") from error


class Library:
    """A loaded libbrainsam with typed function prototypes."""

    def __init__(self, path: str | os.PathLike | None = None):
        chosen = _find_library(path)
        self._lib = _load_with_torch(chosen)
        model = _runtime.bundled_model()
        if model is not None and chosen == _runtime.bundled_library():
            # The wheel's library finds its default model through BRAINSAM_MODEL.
            os.environ.setdefault("BRAINSAM_MODEL", str(model))
        self.path = chosen
        self._declare()
        abi = self._lib.brainsam_abi_version()
        if abi != ABI_VERSION:
            raise BrainSAMError(
                7,
                f"{chosen} has C ABI version {abi}, this binding needs {ABI_VERSION}: "
                "install matching versions of the library and the Slicer module",
            )

    def _declare(self) -> None:
        lib = self._lib
        lib.brainsam_version.restype = ctypes.c_char_p
        lib.brainsam_version.argtypes = []
        lib.brainsam_version_number.restype = ctypes.c_uint32
        lib.brainsam_abi_version.restype = ctypes.c_uint32
        lib.brainsam_last_error_message.restype = ctypes.c_char_p
        lib.brainsam_status_name.restype = ctypes.c_char_p
        lib.brainsam_status_name.argtypes = [ctypes.c_uint32]
        lib.brainsam_runtime_info.restype = ctypes.c_uint32
        lib.brainsam_runtime_info.argtypes = [ctypes.POINTER(_RuntimeInfo)]
        # The model/session API is declared only where the library has it, so that this
        # binding still loads an older library (session use then raises a clear error).
        p = ctypes.c_void_p
        u32, i32, i64, f64 = ctypes.c_uint32, ctypes.c_int32, ctypes.c_int64, ctypes.c_double
        u64 = ctypes.c_uint64
        ijk = ctypes.POINTER(ctypes.c_double)
        prototypes = {
            "brainsam_model_load": [ctypes.POINTER(_ModelOptions), ctypes.POINTER(p)],
            "brainsam_model_free": [p],
            "brainsam_session_create": [p, ctypes.POINTER(p)],
            "brainsam_session_create_with_options": [
                p,
                ctypes.POINTER(_SessionOptions),
                ctypes.POINTER(p),
            ],
            "brainsam_session_free": [p],
            "brainsam_session_set_volume": [p, ctypes.POINTER(_VolumeDesc)],
            "brainsam_session_segment_all": [p, _PROGRESS_FN, p],
            "brainsam_session_add_point": [p, u32, ijk, i32],
            "brainsam_session_add_box": [p, u32, ijk, ijk],
            "brainsam_session_add_point_with_slice": [p, u32, ijk, i32, ctypes.POINTER(u64)],
            "brainsam_session_add_box_with_slice": [p, u32, ijk, ijk, ctypes.POINTER(u64)],
            "brainsam_session_get_structure_stats": [p, u32, ctypes.POINTER(_StructureStats)],
            "brainsam_get_structure_info": [u32, ctypes.POINTER(_StructureInfo)],
            "brainsam_parse_device": [ctypes.c_char_p, ctypes.POINTER(u32), ctypes.POINTER(u32)],
            "brainsam_parse_precision": [ctypes.c_char_p, ctypes.POINTER(u32)],
            "brainsam_session_clear_prompts": [p, u32, i64],
            "brainsam_session_segment_structure": [p, u32, i64],
            "brainsam_session_segment_structure_3d": [
                p,
                u32,
                ijk,
                ijk,
                ctypes.POINTER(ctypes.c_uint64),
                ctypes.POINTER(ctypes.c_uint64),
            ],
            "brainsam_session_slicing_axis": [p, ctypes.POINTER(u32)],
            "brainsam_session_copy_labels": [p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t],
            "brainsam_session_structure_stats": [p, u32, ctypes.POINTER(f64), ctypes.POINTER(f64)],
            "brainsam_set_log_callback": [_LOG_FN, p],
            "brainsam_fine_tune_start": [
                ctypes.c_char_p,
                ctypes.POINTER(_FineTuneOptions),
                ctypes.POINTER(p),
            ],
            "brainsam_fine_tune_progress": [p, ctypes.POINTER(_FineTuneStatus)],
            "brainsam_fine_tune_cancel": [p],
            "brainsam_fine_tune_wait": [p],
            "brainsam_fine_tune_save": [p, u32, ctypes.c_char_p],
            "brainsam_fine_tune_free": [p],
        }
        prototypes.update(_JOB_PROTOTYPES)
        for name, argtypes in prototypes.items():
            if hasattr(lib, name):
                function = getattr(lib, name)
                function.argtypes = argtypes
                function.restype = None if name.endswith("_free") else ctypes.c_uint32
        if hasattr(lib, "brainsam_structure_count"):
            lib.brainsam_structure_count.restype = ctypes.c_uint32
            lib.brainsam_structure_count.argtypes = []
        global _status_name_function
        if _status_name_function is None:
            _status_name_function = lib.brainsam_status_name

    @property
    def has_sessions(self) -> bool:
        """Whether the loaded library has the model/session C API."""
        return hasattr(self._lib, "brainsam_session_create")

    def _function(self, name: str):
        """The C function `name`, or a clear error when this library predates it."""
        try:
            return getattr(self._lib, name)
        except AttributeError:
            raise BrainSAMError(
                7,
                f"{self.path} (version {self.version()}) has no {name}: "
                "install a BrainSAM library with the model/session API",
            ) from None

    def _call(self, name: str, *args) -> None:
        """Call the C function `name` and raise BrainSAMError on a non-zero status."""
        self._check(self._function(name)(*args))

    def set_log_callback(self, callback: Optional[Callable[[int, str], None]]) -> None:
        """Receive the library's log messages as callback(level, message) (level: 1 error ..
        5 trace, see LOG_LEVELS); None stops them. The callback may run on any thread and
        must not raise (exceptions are swallowed so they never cross into the library)."""
        if callback is None:
            self._call("brainsam_set_log_callback", ctypes.cast(None, _LOG_FN), None)
            self._log_trampoline = None
            return

        def trampoline(_user_data, level, message):
            try:
                callback(int(level), (message or b"").decode("utf-8", "replace"))
            except Exception:  # noqa: BLE001 - nothing may propagate into C
                pass

        c_callback = _LOG_FN(trampoline)
        self._call("brainsam_set_log_callback", c_callback, None)
        # ctypes frees the C thunk with the Python object: keep it while registered.
        self._log_trampoline = c_callback

    def load_model(
        self,
        checkpoint: str | os.PathLike | None = None,
        adapter: str | os.PathLike | None = None,
        device: str = "auto",
        precision: str = "auto",
    ) -> "Model":
        """Load a model (see Model)."""
        return Model(
            self, checkpoint=checkpoint, adapter=adapter, device=device, precision=precision
        )

    def _check(self, status: int) -> None:
        if status != 0:
            message = self._lib.brainsam_last_error_message().decode("utf-8", "replace")
            raise BrainSAMError(status, message)

    def version(self) -> str:
        """The library version, e.g. '0.1.0'."""
        return self._lib.brainsam_version().decode()

    def abi_version(self) -> int:
        """The C ABI version of the loaded library."""
        return int(self._lib.brainsam_abi_version())

    def runtime_info(self) -> dict:
        """libtorch version, CUDA availability and device count, CPU threads."""
        info = _RuntimeInfo()
        info.struct_size = ctypes.sizeof(_RuntimeInfo)
        self._check(self._lib.brainsam_runtime_info(ctypes.byref(info)))
        return {
            "libtorch_version": info.libtorch_version.decode(),
            "cuda_available": bool(info.cuda_available),
            "cuda_device_count": int(info.cuda_device_count),
            "cpu_threads": int(info.cpu_threads),
        }

    def raw(self) -> ctypes.CDLL:
        """The underlying ctypes library, for tests of the C convention itself."""
        return self._lib

    def parse_device(self, device: str) -> tuple[int, int]:
        """(brainsam_device, device_index) for a device name ("auto", "cpu", "cuda",
        "cuda:N"), parsed by the library as the command line parses it."""
        code, index = ctypes.c_uint32(), ctypes.c_uint32()
        self._call("brainsam_parse_device", str(device).encode(), ctypes.byref(code), ctypes.byref(index))
        return int(code.value), int(index.value)

    def parse_precision(self, precision: str) -> int:
        """The brainsam_precision value of a precision name ("auto", "fp32", "bf16",
        "fp16"), parsed by the library as the command line parses it."""
        code = ctypes.c_uint32()
        self._call("brainsam_parse_precision", str(precision).encode(), ctypes.byref(code))
        return int(code.value)

    def structures(self) -> tuple:
        """The structures as the library describes them (brainsam_get_structure_info), in
        class-id order: StructureInfo(class_id, name, short_name, freesurfer_name,
        freesurfer_code, rgb)."""
        count = self._function("brainsam_structure_count")()
        found = []
        for class_id in range(1, count + 1):
            info = _StructureInfo()
            info.struct_size = ctypes.sizeof(_StructureInfo)
            self._call("brainsam_get_structure_info", ctypes.c_uint32(class_id), ctypes.byref(info))
            found.append(
                StructureInfo(
                    class_id=int(info.class_id),
                    name=info.name.decode(),
                    short_name=info.short_name.decode(),
                    freesurfer_name=info.freesurfer_name.decode(),
                    freesurfer_code=int(info.freesurfer_code),
                    rgb=tuple(int(c) for c in info.colour),
                )
            )
        return tuple(found)


class StructureInfo(NamedTuple):
    """One structure as the library describes it (see Library.structures)."""

    class_id: int  #: value in label volumes (1..12)
    name: str  #: e.g. "Left thalamus"
    short_name: str  #: e.g. "L-Thal"
    freesurfer_name: str  #: FreeSurferColorLUT name, e.g. "Left-Thalamus"
    freesurfer_code: int  #: FreeSurfer aseg code, e.g. 10
    rgb: tuple  #: FreeSurferColorLUT colour, 0..255


def decompose_ijk_to_ras(ijk_to_ras: Sequence[Sequence[float]]):
    """Split a 4x4 IJK-to-RAS matrix (Slicer's volume geometry) into the C API's
    (spacing[3], origin[3], direction[9] row-major with column c the direction of voxel axis c).
    A zero or non-finite column gives spacing 0 or NaN, which the library then rejects with a
    message naming the axis, so the check lives in one place."""
    matrix = np.asarray(ijk_to_ras, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise BrainSAMError(1, f"IJK-to-RAS matrix must be 4x4, got shape {matrix.shape}")
    linear = matrix[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    direction = np.eye(3)
    for axis in range(3):
        if spacing[axis] > 0 and np.isfinite(spacing[axis]):
            direction[:, axis] = linear[:, axis] / spacing[axis]
    return spacing, matrix[:3, 3].copy(), direction


class _OwnedHandle:
    """Lifetime of one C handle owned by a Python object: close() frees it once through
    the library's `_free_function` (for a running fine-tune, the library cancels and
    waits first); `with` blocks and garbage collection close it too."""

    _free_function = ""
    _handle = None
    library: "Library"

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._handle is None

    def close(self) -> None:
        """Free the handle (idempotent)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            self.library._function(self._free_function)(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class Model(_OwnedHandle):
    """A loaded BrainSAM model (brainsam_model). Immutable; may be shared by sessions on
    several threads. `close()` (or leaving a `with` block) frees this handle; sessions
    created from it keep the model alive inside the library."""

    _free_function = "brainsam_model_free"

    def __init__(
        self,
        library: Library | None = None,
        checkpoint: str | os.PathLike | None = None,
        adapter: str | os.PathLike | None = None,
        device: str = "auto",
        precision: str = "auto",
    ):
        self.library = library if library is not None else load_library()
        device_code, device_index = self.library.parse_device(device)
        precision_code = self.library.parse_precision(precision)
        options = _ModelOptions()
        options.struct_size = ctypes.sizeof(_ModelOptions)
        # Keep the encoded paths referenced until the call returns.
        checkpoint_bytes = os.fsencode(checkpoint) if checkpoint else None
        adapter_bytes = os.fsencode(adapter) if adapter else None
        options.checkpoint_path = checkpoint_bytes
        options.adapter_path = adapter_bytes
        options.device = device_code
        options.device_index = device_index
        options.precision = precision_code
        handle = ctypes.c_void_p()
        self._handle = None
        self.library._call("brainsam_model_load", ctypes.byref(options), ctypes.byref(handle))
        self._handle = handle
        self.checkpoint, self.adapter, self.device = checkpoint, adapter, device
        self.precision = precision

    def handle(self) -> ctypes.c_void_p:
        """The C handle; raises when the model is closed."""
        if self._handle is None:
            raise BrainSAMError(6, "the model is closed: load it again")
        return self._handle

    def session(self, **options) -> "Session":
        """A new session on this model (options: see Session)."""
        return Session(self, **options)


class Session(_OwnedHandle):
    """One volume being segmented (brainsam_session): set_volume, then segment_all and/or
    prompts + segment_structure, then copy_labels. Not for two threads at once: a call made
    while another thread is inside one raises BrainSAMError (INVALID_STATE) instead of
    racing. Voxel coordinates are (i, j, k); numpy volumes are indexed [k, j, i]."""

    _free_function = "brainsam_session_free"

    def __init__(
        self,
        model: Model,
        batch_size: int = 0,
        mirror_averaging: bool = True,
        cleanup: bool = True,
        embedding_cache: str = "auto",
        shift_averaging: bool = True,
        view_averaging: bool = True,
    ):
        """`batch_size`: slices per encoder pass (0: automatic); `mirror_averaging`:
        automatic segmentation also segments the mirrored slices (twice the time, more
        accurate); `cleanup`: 3D clean-up of the automatic result; `embedding_cache`:
        "auto", "device" or "host"; `shift_averaging`: automatic segmentation also
        segments the slices with their content shifted by half an encoder patch (four
        times the time, more accurate); `view_averaging`: automatic segmentation also
        runs the models of other slice orientations the model file carries (the default
        model's axial and sagittal models: twice the time, more accurate)."""
        self.library = model.library
        if embedding_cache not in EMBEDDING_CACHES:
            raise BrainSAMError(
                1,
                f"embedding_cache must be one of {', '.join(EMBEDDING_CACHES)}, "
                f"got {embedding_cache!r}",
            )
        if not 0 <= int(batch_size) < 2**32:
            raise BrainSAMError(1, f"batch_size must be 0 (automatic) or positive, got {batch_size}")
        options = _SessionOptions(
            ctypes.sizeof(_SessionOptions),
            int(batch_size),
            0 if mirror_averaging else 1,
            0 if cleanup else 1,
            EMBEDDING_CACHES[embedding_cache],
            0 if shift_averaging else 1,
            0 if view_averaging else 1,
        )
        handle = ctypes.c_void_p()
        self._handle = None
        self.library._call(
            "brainsam_session_create_with_options",
            model.handle(),
            ctypes.byref(options),
            ctypes.byref(handle),
        )
        self._handle = handle
        self._busy = threading.Lock()
        self.shape: tuple | None = None  # numpy shape (k, j, i) of the current volume
        self.spacing: np.ndarray | None = None


    def _call(self, name: str, *args) -> None:
        if self._handle is None:
            raise BrainSAMError(6, f"{name}: the session is closed")
        if not self._busy.acquire(blocking=False):
            raise BrainSAMError(6, f"{name}: the session is in use by another thread")
        try:
            self.library._call(name, self._handle, *args)
        finally:
            self._busy.release()

    # -- volume -------------------------------------------------------------------------

    def set_volume(self, array: np.ndarray, ijk_to_ras: Sequence[Sequence[float]]) -> None:
        """Give the session a volume: `array` indexed [k, j, i] (Slicer's arrayFromVolume)
        and its 4x4 IJK-to-RAS matrix (volumeNode.GetIJKToRASMatrix). The voxels are copied."""
        spacing, origin, direction = decompose_ijk_to_ras(ijk_to_ras)
        self.set_volume_geometry(array, spacing, origin, direction, COORDINATES_RAS)

    def set_volume_geometry(
        self,
        array: np.ndarray,
        spacing: Sequence[float],
        origin: Sequence[float],
        direction: Sequence[Sequence[float]],
        coordinates: int = COORDINATES_RAS,
    ) -> None:
        """set_volume with explicit geometry: spacing (mm, per voxel axis i, j, k), origin,
        3x3 direction (column c = direction of axis c), in RAS or LPS coordinates."""
        array = np.asarray(array)
        if array.ndim != 3:
            raise BrainSAMError(
                1, f"volume must be 3-D indexed [k, j, i], got {array.ndim}-D shape {array.shape}"
            )
        if array.dtype == np.bool_:
            array = array.astype(np.uint8)
        native = array.dtype.newbyteorder("=") if array.dtype.byteorder not in "=|" else array.dtype
        code = DTYPES.get(np.dtype(native))
        if code is None:
            raise BrainSAMError(
                1,
                f"volume dtype {array.dtype} is not supported (use one of "
                + ", ".join(str(d) for d in DTYPES)
                + ")",
            )
        array = np.ascontiguousarray(array, dtype=native)
        geometry = [np.asarray(v, dtype=np.float64) for v in (spacing, origin, direction)]
        for name, value, size in zip(("spacing", "origin", "direction"), geometry, (3, 3, 9)):
            if value.size != size:
                raise BrainSAMError(1, f"{name} needs {size} numbers, got shape {value.shape}")
        desc = _VolumeDesc()
        desc.struct_size = ctypes.sizeof(_VolumeDesc)
        desc.data = array.ctypes.data_as(ctypes.c_void_p)
        desc.data_len = array.nbytes
        desc.dtype = code
        desc.dims[:] = [array.shape[2], array.shape[1], array.shape[0]]
        desc.spacing[:] = [float(x) for x in geometry[0].ravel()]
        desc.origin[:] = [float(x) for x in geometry[1].ravel()]
        desc.direction[:] = [float(x) for x in geometry[2].reshape(3, 3).ravel()]
        desc.coordinates = int(coordinates)
        self._call("brainsam_session_set_volume", ctypes.byref(desc))
        self.shape = tuple(array.shape)
        self.spacing = geometry[0].ravel().copy()

    # -- automatic segmentation ---------------------------------------------------------

    def segment_all(self, progress: Optional[Callable[[int, int], object]] = None) -> None:
        """Segment all 12 structures. `progress(done, total)` is called from this thread as
        work proceeds; a truthy return cancels (BrainSAMError with status CANCELLED). An
        exception raised by `progress` cancels the work and is re-raised here."""
        raised: list = []

        def trampoline(_user_data, done, total):
            if progress is None:
                return 0
            try:
                return 1 if progress(int(done), int(total)) else 0
            except BaseException as error:  # noqa: BLE001 - must not cross into C
                raised.append(error)
                return 1

        c_progress = _PROGRESS_FN(trampoline)
        try:
            self._call("brainsam_session_segment_all", c_progress, None)
        except BrainSAMError:
            if raised:
                raise raised[0] from None
            raise

    # -- prompts ------------------------------------------------------------------------

    @staticmethod
    def _ijk(point: Sequence[float], what: str):
        values = [float(x) for x in point]
        if len(values) != 3:
            raise BrainSAMError(1, f"{what} needs 3 voxel coordinates (i, j, k), got {len(values)}")
        return (ctypes.c_double * 3)(*values)

    def add_point(self, structure: int, ijk: Sequence[float], positive: bool = True) -> int:
        """Add a point prompt (voxel coordinates i, j, k) for `structure` (1..12) on the
        coronal slice containing it; positive=False marks the point as outside. Returns
        that slice (voxel index along the slicing axis), as the library places it."""
        slice_index = ctypes.c_uint64()
        self._call(
            "brainsam_session_add_point_with_slice",
            ctypes.c_uint32(structure),
            self._ijk(ijk, "point"),
            ctypes.c_int32(1 if positive else 0),
            ctypes.byref(slice_index),
        )
        return int(slice_index.value)

    def add_box(self, structure: int, ijk_a: Sequence[float], ijk_b: Sequence[float]) -> int:
        """Add a box prompt given by two opposite corners on the same coronal slice.
        Returns that slice (voxel index along the slicing axis)."""
        slice_index = ctypes.c_uint64()
        self._call(
            "brainsam_session_add_box_with_slice",
            ctypes.c_uint32(structure),
            self._ijk(ijk_a, "box corner a"),
            self._ijk(ijk_b, "box corner b"),
            ctypes.byref(slice_index),
        )
        return int(slice_index.value)

    def clear_prompts(self, structure: int, slice_index: Optional[int] = None) -> None:
        """Remove the prompts of `structure` on one slice, or on all slices (None)."""
        self._call(
            "brainsam_session_clear_prompts",
            ctypes.c_uint32(structure),
            ctypes.c_int64(-1 if slice_index is None else int(slice_index)),
        )

    def segment_structure(self, structure: int, slice_index: int) -> None:
        """Re-segment `structure` on one coronal slice from its prompts and previous mask."""
        self._call(
            "brainsam_session_segment_structure",
            ctypes.c_uint32(structure),
            ctypes.c_int64(int(slice_index)),
        )

    def segment_structure_3d(
        self, structure: int, ijk_a: Sequence[float], ijk_b: Sequence[float]
    ) -> Tuple[int, int]:
        """Segment `structure` in 3D from one box (two opposite corners on one coronal
        slice, normally the structure's middle slice), propagated slice by slice until the
        mask vanishes; clears the structure's earlier prompts first. Needs a model with an
        interactive head (the default model). Returns the first and last slice that
        received a box."""
        first, last = ctypes.c_uint64(), ctypes.c_uint64()
        self._call(
            "brainsam_session_segment_structure_3d",
            ctypes.c_uint32(structure),
            self._ijk(ijk_a, "box corner a"),
            self._ijk(ijk_b, "box corner b"),
            ctypes.byref(first),
            ctypes.byref(last),
        )
        return int(first.value), int(last.value)

    def propagate_structure(
        self,
        structure: int,
        from_slice: int,
        direction: str = "both",
        max_slices: Optional[int] = None,
    ) -> Tuple[int, ...]:
        """Propagate `structure` from its current mask on slice `from_slice` (its prompts'
        mask there, else its labels) to the neighbouring slices, in the library
        (brainsam_session_propagate_structure): each next slice gets the previous slice's
        mask's bounding box, slightly grown, as box prompt, until the mask vanishes, the
        region of interest ends or `max_slices` slices per direction (None: no limit) are
        done. `direction`: "both", "forward" (increasing slice indices) or "backward".
        Returns the slices segmented, in the order visited (forward first)."""
        first, last, count = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint64()
        self._call(
            "brainsam_session_propagate_structure",
            *_propagation_args(structure, from_slice, direction, max_slices),
            ctypes.byref(first),
            ctypes.byref(last),
            ctypes.byref(count),
        )
        return _propagated_slices(int(from_slice), int(first.value), int(last.value))

    # -- results ------------------------------------------------------------------------

    def slicing_axis(self) -> int:
        """The voxel axis (0 = i, 1 = j, 2 = k) the library slices along (coronal)."""
        axis = ctypes.c_uint32()
        self._call("brainsam_session_slicing_axis", ctypes.byref(axis))
        return int(axis.value)

    def slice_count(self) -> int:
        """Number of coronal slices of the current volume."""
        if self.shape is None:
            raise BrainSAMError(6, "slice_count: no volume set (call set_volume first)")
        return int(self.shape[2 - self.slicing_axis()])

    def copy_labels(self, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The label volume (uint8, class ids 0..12), shaped like the input array [k, j, i]."""
        if self.shape is None:
            raise BrainSAMError(6, "copy_labels: no volume set (call set_volume first)")
        if out is None:
            out = np.empty(self.shape, dtype=np.uint8)
        elif out.dtype != np.uint8 or out.shape != self.shape or not out.flags.c_contiguous:
            raise BrainSAMError(
                1, f"out must be a C-contiguous uint8 array of shape {self.shape}, got "
                f"{out.dtype} {out.shape}"
            )
        buffer = out.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        self._call("brainsam_session_copy_labels", buffer, ctypes.c_size_t(out.size))
        return out

    def structure_stats(self, structure: int) -> tuple[float, float]:
        """(volume in mm^3, mean confidence in [0, 1]) of one structure."""
        volume, confidence = ctypes.c_double(), ctypes.c_double()
        self._call(
            "brainsam_session_structure_stats",
            ctypes.c_uint32(structure),
            ctypes.byref(volume),
            ctypes.byref(confidence),
        )
        return float(volume.value), float(confidence.value)

    def structure_details(self, structure: int) -> dict:
        """Voxel count, volume (mm^3), mean confidence and input-QC flags of one
        structure (1..12): {"voxels", "volume_mm3", "confidence", "qc"}."""
        stats = _StructureStats()
        stats.struct_size = ctypes.sizeof(_StructureStats)
        self._call(
            "brainsam_session_get_structure_stats", ctypes.c_uint32(structure), ctypes.byref(stats)
        )
        return {
            "voxels": int(stats.voxels),
            "volume_mm3": float(stats.volume_mm3),
            "confidence": float(stats.confidence),
            "qc": int(stats.qc),
        }

    def structure_qc(self, structure: int = 0) -> int:
        """Input-QC flags of one structure (1..12), or of all together (0): a bit set of
        QC_VOLUME_LOW, QC_VOLUME_HIGH and QC_LOW_CONFIDENCE; 0 means plausible for a T1
        brain. Non-zero: warn that the input is probably not a T1 brain image."""
        flags = ctypes.c_uint32()
        self._call(
            "brainsam_session_structure_qc", ctypes.c_uint32(structure), ctypes.byref(flags)
        )
        return int(flags.value)

    # -- background jobs ----------------------------------------------------------------

    def slice_range(self) -> tuple[int, int]:
        """(first, last) slice of the region of interest along the slicing axis: where
        segment_all works and prompts may go (brainsam_session_slice_range)."""
        first, last = ctypes.c_uint64(), ctypes.c_uint64()
        self._call("brainsam_session_slice_range", ctypes.byref(first), ctypes.byref(last))
        return int(first.value), int(last.value)

    def start_segment_all(self) -> "Job":
        """segment_all() as a library job (see Job): returns at once."""
        return Job(self, "brainsam_session_segment_all_start")

    def start_segment_structure(self, structure: int, slice_index: int) -> "Job":
        """segment_structure() as a library job (see Job): returns at once."""
        return Job(
            self,
            "brainsam_session_segment_structure_start",
            ctypes.c_uint32(structure),
            ctypes.c_int64(int(slice_index)),
        )

    def start_propagate_structure(
        self,
        structure: int,
        from_slice: int,
        direction: str = "both",
        max_slices: Optional[int] = None,
    ) -> "PropagationJob":
        """propagate_structure() as a library job (see Job): returns at once; once it has
        finished, the job's `slices` are the slices segmented."""
        return PropagationJob(self, int(from_slice), *_propagation_args(structure, from_slice, direction, max_slices))


#: brainsam_propagation_direction numbers by name.
PROPAGATION_DIRECTIONS = {"both": 0, "forward": 1, "backward": 2}


def _propagation_args(structure, from_slice, direction, max_slices) -> tuple:
    """The C arguments (structure, from_slice, direction, max_slices) of a propagation,
    with clear errors for a wrong direction or slice limit."""
    if direction not in PROPAGATION_DIRECTIONS:
        raise ValueError(
            f"propagation direction must be one of {', '.join(PROPAGATION_DIRECTIONS)}, got {direction!r}"
        )
    if max_slices is not None and not 1 <= int(max_slices) <= 0xFFFFFFFF:
        raise ValueError(f"max_slices must be at least 1 (or None for no limit), got {max_slices!r}")
    return (
        ctypes.c_uint32(structure),
        ctypes.c_int64(int(from_slice)),
        ctypes.c_uint32(PROPAGATION_DIRECTIONS[direction]),
        ctypes.c_uint32(0 if max_slices is None else int(max_slices)),
    )


def _propagated_slices(start: int, first: int, last: int) -> Tuple[int, ...]:
    """The slices a propagation from `start` segmented, covering first..last, in the
    library's order: forward first, then backward."""
    return tuple(range(start + 1, last + 1)) + tuple(range(start - 1, first - 1, -1))


#: brainsam_job_state numbers (the same as the fine-tuning states).
JOB_STATES = {0: "running", 1: "finished", 2: "failed", 3: "cancelled"}

_JOB_PROTOTYPES = {
    "brainsam_session_segment_all_start": [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)],
    "brainsam_session_segment_structure_start": [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int64,
        ctypes.POINTER(ctypes.c_void_p),
    ],
    "brainsam_session_propagate_structure": [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int64,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.POINTER(ctypes.c_uint64),
    ],
    "brainsam_session_propagate_structure_start": [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int64,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.POINTER(ctypes.c_void_p),
    ],
    "brainsam_job_slice_range": [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.POINTER(ctypes.c_uint64),
    ],
    "brainsam_job_progress": [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.POINTER(ctypes.c_uint32),
    ],
    "brainsam_job_cancel": [ctypes.c_void_p],
    "brainsam_job_wait": [ctypes.c_void_p],
    "brainsam_job_free": [ctypes.c_void_p],
    "brainsam_session_slice_range": [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.POINTER(ctypes.c_uint64),
    ],
}


class Job(_OwnedHandle):
    """Session work running on a library thread (brainsam_job), made by
    Session.start_segment_all() / start_segment_structure(). Poll progress() from a UI
    timer: it never blocks and needs no callback, so the work runs at full speed whatever
    the host does with Python's GIL. While it runs, the session refuses other calls
    (BrainSAMError INVALID_STATE). close() cancels a running job and waits for it."""

    _free_function = "brainsam_job_free"

    def __init__(self, session: "Session", start_function: str, *args):
        self.library = session.library
        self.session = session  # kept alive while the job runs
        handle = ctypes.c_void_p()
        self._handle = None
        session._call(start_function, *args, ctypes.byref(handle))
        self._handle = handle

    def _live(self) -> ctypes.c_void_p:
        if self._handle is None:
            raise BrainSAMError(6, "the job is closed")
        return self._handle

    def progress(self) -> tuple[int, int, str]:
        """(done, total, state): units done of total (0: not known yet) and "running",
        "finished", "failed" or "cancelled"."""
        done, total, state = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint32()
        self.library._call(
            "brainsam_job_progress",
            self._live(),
            ctypes.byref(done),
            ctypes.byref(total),
            ctypes.byref(state),
        )
        return int(done.value), int(total.value), JOB_STATES.get(state.value, f"unknown {state.value}")

    @property
    def running(self) -> bool:
        """Whether the job is still working."""
        return self.progress()[2] == "running"

    def cancel(self) -> None:
        """Ask the job to stop at its next unit of work (returns at once)."""
        self.library._call("brainsam_job_cancel", self._live())

    def wait(self) -> str:
        """Block until the job ends (at once when it has): "finished" or "cancelled";
        BrainSAMError with the library's message when it failed. (ctypes releases the GIL
        meanwhile.)"""
        status = self.library._function("brainsam_job_wait")(self._live())
        if status == 8:  # CANCELLED
            return "cancelled"
        self.library._check(status)
        return "finished"


class PropagationJob(Job):
    """A propagation running as a library job (Session.start_propagate_structure):
    once wait() has seen it finish, `slices` are the slices it segmented (the library's
    order: forward first); None before, or when it was cancelled or failed."""

    def __init__(self, session: "Session", start: int, *args):
        self.start = start
        self.slices: Optional[Tuple[int, ...]] = None
        super().__init__(session, "brainsam_session_propagate_structure_start", *args)

    def wait(self) -> str:
        outcome = super().wait()
        if outcome == "finished" and self.slices is None:
            first, last = ctypes.c_uint64(), ctypes.c_uint64()
            self.library._call(
                "brainsam_job_slice_range", self._live(), ctypes.byref(first), ctypes.byref(last), None
            )
            self.slices = _propagated_slices(self.start, int(first.value), int(last.value))
        return outcome


class FineTune(_OwnedHandle):
    """A fine-tuning run (brainsam_fine_tune) configured by a `brainsam train` TOML file,
    training on a library thread: poll progress() (e.g. from a Qt timer), cancel(),
    wait(), then save(). The configuration, the files it names and the output folder are
    checked by the constructor, which raises BrainSAMError naming the problem (an output
    folder holding an earlier run needs resume=True or overwrite=True); errors in the
    data's content end the run as "failed".
    close() (or leaving a `with` block) cancels a running run and waits for its thread."""

    _free_function = "brainsam_fine_tune_free"

    def __init__(
        self,
        config_path: str | os.PathLike,
        resume: bool = False,
        library: Library | None = None,
        overwrite: bool = False,
    ):
        self.library = library if library is not None else load_library()
        options = _FineTuneOptions()
        options.struct_size = ctypes.sizeof(_FineTuneOptions)
        options.resume = 1 if resume else 0
        options.overwrite = 1 if overwrite else 0
        handle = ctypes.c_void_p()
        self._handle = None
        self.library._call(
            "brainsam_fine_tune_start",
            os.fsencode(config_path),
            ctypes.byref(options),
            ctypes.byref(handle),
        )
        self._handle = handle
        self.config_path = config_path

    def _live(self) -> ctypes.c_void_p:
        if self._handle is None:
            raise BrainSAMError(6, "the fine-tuning run is closed")
        return self._handle

    def progress(self) -> dict:
        """state ("running", "finished", "failed", "cancelled"), iteration, total, loss, lr,
        last_validation_dice, best_validation_dice (NaN: none yet), error_status and
        error_message (set when failed)."""
        status = _FineTuneStatus()
        status.struct_size = ctypes.sizeof(_FineTuneStatus)
        self.library._call("brainsam_fine_tune_progress", self._live(), ctypes.byref(status))
        return {
            "state": FINE_TUNE_STATES.get(status.state, f"unknown {status.state}"),
            "iteration": int(status.iteration),
            "total": int(status.total),
            "loss": float(status.loss),
            "lr": float(status.lr),
            "last_validation_dice": float(status.last_validation_dice),
            "best_validation_dice": float(status.best_validation_dice),
            "error_status": int(status.error_status),
            "error_message": status.error_message.decode("utf-8", "replace"),
        }

    def cancel(self) -> None:
        """Ask the run to stop after its current iteration (it writes a checkpoint)."""
        self.library._call("brainsam_fine_tune_cancel", self._live())

    def wait(self) -> str:
        """Block until the run ends; "finished" or "cancelled", BrainSAMError if it failed.
        (ctypes releases the GIL meanwhile.)"""
        status = self.library._function("brainsam_fine_tune_wait")(self._live())
        if status == 8:  # CANCELLED
            return "cancelled"
        self.library._check(status)
        return "finished"

    def save(self, path: str | os.PathLike, output: str = "model") -> None:
        """Copy an output ("model", "adapter" or "best_model") of the finished run to
        `path` atomically."""
        if output not in FINE_TUNE_OUTPUTS:
            raise BrainSAMError(
                1, f"output must be one of {', '.join(FINE_TUNE_OUTPUTS)}, got {output!r}"
            )
        self.library._call(
            "brainsam_fine_tune_save",
            self._live(),
            ctypes.c_uint32(FINE_TUNE_OUTPUTS[output]),
            os.fsencode(path),
        )


_default: Library | None = None


def load_library(path: str | os.PathLike | None = None) -> Library:
    """The process-wide library (loaded once), or a specific one when `path` is given."""
    global _default
    if path is not None:
        return Library(path)
    if _default is None:
        _default = Library()
    return _default
