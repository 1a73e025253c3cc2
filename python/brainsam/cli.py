"""The `brainsam` console command of the wheel: runs the Rust CLI shipped inside the
package (segment, evaluate, info, init-model, fine-tune) with the installed torch's
libtorch on its library path and the bundled default model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import _runtime


def main() -> None:
    """Entry point of the console command; never returns on success (exec)."""
    binary = Path(__file__).resolve().parent / "bin" / "brainsam"
    if not binary.is_file():
        sys.exit(f"brainsam: error: {binary} is missing (install the brainsam wheel)")
    try:
        lib_dir = _runtime.find_torch()
    except _runtime.TorchNotFound as error:
        sys.exit(f"brainsam: error: {error}")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [str(lib_dir)] + [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    )
    model = _runtime.bundled_model()
    if model is not None:
        env.setdefault("BRAINSAM_MODEL", str(model))
    os.execve(str(binary), [str(binary)] + sys.argv[1:], env)


if __name__ == "__main__":
    main()
