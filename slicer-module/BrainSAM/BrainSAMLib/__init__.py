"""BrainSAM's Python side for 3D Slicer: a ctypes binding to the C ABI (no Slicer needed)."""

from .binding import BrainSAMError, Library, load_library  # noqa: F401
