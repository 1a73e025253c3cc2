"""pytest set-up: the binding (python/brainsam) and the Slicer logic (slicer-module/) are
imported from the checkout; the binding finds the library that the Rust build produced
through BRAINSAM_LIBRARY (set by scripts/test)."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "slicer-module" / "BrainSAM"))
sys.path.insert(0, str(REPO / "python"))


@pytest.fixture(scope="session")
def library_path() -> str:
    path = os.environ.get("BRAINSAM_LIBRARY")
    if not path:
        for profile in ("debug", "release"):
            candidate = REPO / "target" / profile / "libbrainsam.so"
            if candidate.exists():
                path = str(candidate)
                break
    assert path and Path(path).exists(), "build the library first (cargo build) or set BRAINSAM_LIBRARY"
    return path


@pytest.fixture(scope="session")
def lib(library_path):
    from brainsam import binding

    return binding.load_library(library_path)
