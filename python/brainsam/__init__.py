"""BrainSAM for Python: segment 12 subcortical structures in T1 MRI.

    import brainsam
    labels = brainsam.segment("t1.nii.gz")          # uint8 [i, j, k], ids: brainsam.STRUCTURES

A ctypes + numpy binding to libbrainsam's C ABI; the same package serves Python users and
the 3D Slicer module (one copy of the binding). The wheel bundles libbrainsam.so and the
default model and uses the libtorch of the installed torch (see brainsam._runtime).
"""

from .api import STRUCTURES, fine_tune, load_model, read_volume, save_labels, segment  # noqa: F401
from .binding import (  # noqa: F401
    BrainSAMError,
    FineTune,
    Library,
    Model,
    Session,
    load_library,
)

__all__ = [
    "STRUCTURES",
    "BrainSAMError",
    "FineTune",
    "Library",
    "Model",
    "Session",
    "fine_tune",
    "load_library",
    "load_model",
    "read_volume",
    "save_labels",
    "segment",
]
