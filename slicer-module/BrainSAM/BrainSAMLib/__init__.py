"""BrainSAM's Python side for 3D Slicer: a ctypes binding to the C ABI (no Slicer needed)
and the Slicer-independent logic the module and the Segment Editor effect share."""

from .binding import BrainSAMError, Library, Model, Session, load_library  # noqa: F401
