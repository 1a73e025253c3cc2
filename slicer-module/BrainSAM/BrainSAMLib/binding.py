"""ctypes + numpy binding to libbrainsam's C ABI (include/brainsam.h).

Importable outside Slicer; the Slicer module and Segment Editor effect use only this.
Every C call is checked: a non-zero status raises BrainSAMError carrying the library's
message, so nothing fails silently and nothing crashes the host.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

#: The C ABI version this binding was written for (BRAINSAM_ABI_VERSION in brainsam.h).
ABI_VERSION = 1

#: Status numbers of brainsam_status (stable, see brainsam.h).
STATUS_NAMES = {
    0: "OK",
    1: "INVALID_ARGUMENT",
    2: "NULL_POINTER",
    3: "IO_ERROR",
    4: "INVALID_FILE",
    5: "WEIGHT_MISMATCH",
    6: "INVALID_STATE",
    7: "UNSUPPORTED",
    8: "CANCELLED",
    9: "TORCH_ERROR",
    10: "BUFFER_TOO_SMALL",
    99: "INTERNAL_ERROR",
}


class BrainSAMError(RuntimeError):
    """A BrainSAM call failed; `status` is the C status number, `status_name` its name."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.status_name = STATUS_NAMES.get(status, f"UNKNOWN({status})")
        super().__init__(f"{message} [{self.status_name}]")


class _RuntimeInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("libtorch_version", ctypes.c_char * 32),
        ("cuda_available", ctypes.c_int32),
        ("cuda_device_count", ctypes.c_int32),
        ("cpu_threads", ctypes.c_int32),
    ]


def _find_library(explicit: str | os.PathLike | None) -> Path:
    """The libbrainsam.so to load: the explicit path, else $BRAINSAM_LIBRARY, else the
    Slicer extension's lib folder, else the system search path. A path the user named
    (argument or environment) must exist: it is never silently replaced by another."""
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
    here = Path(__file__).resolve().parent
    # Slicer extension layout: the library sits in a lib folder above the module.
    tried = [up / "lib" / "libbrainsam.so" for up in here.parents[:3]]
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


class Library:
    """A loaded libbrainsam with typed function prototypes."""

    def __init__(self, path: str | os.PathLike | None = None):
        chosen = _find_library(path)
        try:
            self._lib = ctypes.CDLL(str(chosen))
        except OSError as error:
            raise BrainSAMError(3, f"cannot load {chosen}: {error}") from error
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


_default: Library | None = None


def load_library(path: str | os.PathLike | None = None) -> Library:
    """The process-wide library (loaded once), or a specific one when `path` is given."""
    global _default
    if path is not None:
        return Library(path)
    if _default is None:
        _default = Library()
    return _default
