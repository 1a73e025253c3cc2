"""The Slicer-independent logic the BrainSAM module and Segment Editor effect share. The
binding to the library is the `brainsam` Python package (python/brainsam in a source
checkout, or the installed wheel)."""

import sys
from pathlib import Path

try:
    import brainsam  # noqa: F401
except ImportError:
    # Source checkout used as an "Additional module path": the package sits at
    # <repo>/python, two folders above slicer-module/BrainSAM.
    _checkout_package = Path(__file__).resolve().parents[3] / "python"
    if (_checkout_package / "brainsam" / "__init__.py").is_file():
        sys.path.insert(0, str(_checkout_package))
