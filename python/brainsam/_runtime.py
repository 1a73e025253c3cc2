"""Finding libbrainsam and the libtorch it needs, before anything is loaded.

libtorch is not bundled (it is 1-5 GB): BrainSAM uses the libtorch of an installed PyTorch,
the way the PyTorch ecosystem does. The search order is

1. ``BRAINSAM_TORCH_DIR``: a ``torch`` package folder (``.../site-packages/torch``), an
   unpacked libtorch distribution (``libtorch/``), or their ``lib`` folder;
2. the ``torch`` package of this Python (found without importing it);
3. the ``torch`` package of ``python3`` on PATH (``BRAINSAM_PYTHON`` names another
   interpreter): how Python 3.9, which has no torch 2.11 on PyPI, finds one.

Its version is read from ``version.py`` (PyPI torch) or ``build-version`` (libtorch) and
checked *before* libbrainsam is loaded, so a missing or wrong libtorch gives an error
naming what to install instead of the loader's "undefined symbol". The libraries are then
loaded by full path (RTLD_GLOBAL), and libbrainsam's DT_NEEDED entries resolve to them.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

#: The libtorch release BrainSAM builds against (tch 0.24); a wheel's _build.json is exact.
REQUIRED_LIBTORCH = "2.11.0"

#: Libraries preloaded from libtorch's lib folder, in dependency order (those present).
_TORCH_LIBRARIES = ("libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so")

_PACKAGE_DIR = Path(__file__).resolve().parent


class TorchNotFound(RuntimeError):
    """No usable libtorch: missing, of the wrong version, or without the CUDA libraries the
    library was linked with. The message says what to install."""


def build_info() -> Optional[dict]:
    """What the bundled library was built with (wheel installs), else None (source tree)."""
    path = _PACKAGE_DIR / "_build.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def bundled_library() -> Optional[Path]:
    """The libbrainsam.so shipped inside the wheel, if this is a wheel install."""
    path = _PACKAGE_DIR / "lib" / "libbrainsam.so"
    return path if path.is_file() else None


def bundled_model() -> Optional[Path]:
    """The default model shipped inside the wheel, if any."""
    path = _PACKAGE_DIR / "models" / "brainsam-default.safetensors"
    return path if path.is_file() else None


def _install_hint() -> str:
    required = _required_version()
    if sys.version_info >= (3, 10):
        return f"install it with `{sys.executable} -m pip install torch=={required}`"
    return (
        f"PyPI has no torch {required} for Python {sys.version_info.major}."
        f"{sys.version_info.minor}: install torch=={required} into a Python >= 3.10 and set "
        "BRAINSAM_TORCH_DIR to its torch folder (python3 -c 'import torch, os; "
        "print(os.path.dirname(torch.__file__))'), or to an unpacked libtorch "
        f"{required} from pytorch.org, or set BRAINSAM_PYTHON to that Python"
    )


def _required_version() -> str:
    info = build_info()
    if info and info.get("libtorch_version"):
        return info["libtorch_version"].split("+")[0]
    return REQUIRED_LIBTORCH


def _needs_cuda_libraries() -> bool:
    info = build_info()
    return bool(info and info.get("links_torch_cuda"))


def _lib_dir_of(folder: Path) -> Optional[Path]:
    """libtorch's lib folder given a torch package, a libtorch root or the lib folder."""
    for candidate in (folder / "lib", folder):
        if (candidate / "libtorch_cpu.so").is_file():
            return candidate
    return None


def torch_version(lib_dir: Path) -> Optional[str]:
    """The version of the libtorch in `lib_dir` (e.g. "2.11.0+cu130"), if it says."""
    root = lib_dir.parent
    build_version = root / "build-version"
    if build_version.is_file():
        return build_version.read_text().strip()
    version_py = root / "version.py"
    if version_py.is_file():
        match = re.search(r"""^__version__\s*(?::\s*str\s*)?=\s*['"]([^'"]+)['"]""",
                          version_py.read_text(), re.M)
        if match:
            return match.group(1)
    return None


def _torch_of_this_python() -> Optional[Path]:
    import importlib.util

    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent


def _torch_of_other_python() -> tuple[Optional[Path], str]:
    """(torch folder, description) of BRAINSAM_PYTHON or python3 on PATH, when that is
    another interpreter."""
    name = os.environ.get("BRAINSAM_PYTHON") or "python3"
    exe = shutil.which(name)
    if not exe:
        return None, f"{name} (not found)"
    try:
        same = os.path.samefile(exe, sys.executable)
    except OSError:
        same = False
    if same and not os.environ.get("BRAINSAM_PYTHON"):
        return None, f"{exe} (this Python)"
    code = ("import importlib.util as u; s = u.find_spec('torch'); "
            "print(s.origin if s and s.origin else '')")
    try:
        out = subprocess.run([exe, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"{exe} ({error})"
    origin = out.stdout.strip()
    if out.returncode != 0 or not origin:
        return None, f"{exe} (no torch)"
    return Path(origin).parent, exe


def find_torch() -> Path:
    """libtorch's lib folder, checked; raises TorchNotFound naming what to install."""
    required = _required_version()
    explicit = os.environ.get("BRAINSAM_TORCH_DIR")
    if explicit:
        lib_dir = _lib_dir_of(Path(explicit))
        if lib_dir is None:
            raise TorchNotFound(
                f"BRAINSAM_TORCH_DIR={explicit} holds no libtorch (no lib/libtorch_cpu.so): "
                f"point it at a torch {required} package folder or an unpacked libtorch "
                f"{required}"
            )
        where = f"BRAINSAM_TORCH_DIR={explicit}"
    else:
        tried = []
        lib_dir = None
        folder = _torch_of_this_python()
        tried.append(f"{sys.executable} (torch: {folder or 'not installed'})")
        if folder is not None:
            lib_dir = _lib_dir_of(folder)
        if lib_dir is None:
            folder, description = _torch_of_other_python()
            tried.append(description)
            if folder is not None:
                lib_dir = _lib_dir_of(folder)
        if lib_dir is None:
            raise TorchNotFound(
                f"BrainSAM needs libtorch {required} (PyTorch's C++ library) and found none "
                f"(BRAINSAM_TORCH_DIR unset; looked in: {'; '.join(tried)}): {_install_hint()}"
            )
        where = str(lib_dir.parent)
    check_torch(lib_dir, where)
    return lib_dir


def check_torch(lib_dir: Path, where: str) -> None:
    """Raises TorchNotFound when the libtorch in `lib_dir` cannot serve this build."""
    required = _required_version()
    found = torch_version(lib_dir)
    if found is None:
        raise TorchNotFound(
            f"cannot tell the version of the libtorch in {where} (no version.py or "
            f"build-version next to {lib_dir}): BrainSAM needs libtorch {required}"
        )
    if found.split("+")[0] != required:
        raise TorchNotFound(
            f"BrainSAM needs libtorch {required} but {where} has torch {found}: "
            f"{_install_hint()}"
        )
    if _needs_cuda_libraries() and not (lib_dir / "libtorch_cuda.so").is_file():
        raise TorchNotFound(
            f"this BrainSAM build links libtorch's CUDA library but {where} is a CPU-only "
            f"torch {found} (no libtorch_cuda.so): install PyPI's default torch=={required} "
            "(it includes the CUDA libraries and runs on machines without a GPU), or use "
            "a BrainSAM built against a CPU-only libtorch"
        )


_preloaded: list = []


def preload_torch(lib_dir: Path) -> None:
    """Load libtorch's libraries from `lib_dir` so that libbrainsam's DT_NEEDED entries
    resolve to them (the loader matches already-loaded libraries by soname)."""
    for name in _TORCH_LIBRARIES:
        path = lib_dir / name
        if path.is_file():
            try:
                _preloaded.append(ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL))
            except OSError as error:
                raise TorchNotFound(f"cannot load {path}: {error}") from error
