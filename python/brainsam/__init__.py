"""BrainSAM for Python: a ctypes + numpy binding to libbrainsam's C ABI.

The same package serves Python users and the 3D Slicer module (one copy of the binding).
"""

from .binding import BrainSAMError, Library, Model, Session, load_library  # noqa: F401
