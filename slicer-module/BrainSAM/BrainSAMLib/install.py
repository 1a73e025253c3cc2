"""What BrainSAM needs at run time, and installing it the way Slicer users expect.

Two things must be there: the `brainsam` Python package (the wheel, which carries
libbrainsam and finds torch) and a libbrainsam that loads. When the package is missing,
the module asks, then installs it into Slicer's Python with slicer.util.pip_install from
the source in the settings (package name, wheel file or URL). A library the user points
to in the settings is used instead of the package's own. Everything missing is named in
a non-modal message. Slicer is passed in (`util` = slicer.util), so this file runs and is
tested outside Slicer.
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .settings import InstallSettings


@dataclass(frozen=True)
class Problem:
    """Something missing; `installable` when pip_install of the package would fix it."""

    message: str
    installable: bool = False


def package_problem() -> Optional[Problem]:
    """None when the `brainsam` package imports, else what is missing."""
    try:
        importlib.invalidate_caches()
        importlib.import_module("brainsam.binding")
    except ImportError as error:
        return Problem(
            "The BrainSAM Python package 'brainsam' is not installed in Slicer's Python "
            f"({sys.executable}): {error}. Install it from the BrainSAM module "
            "(Installation > Install), or point to a libbrainsam library there.",
            installable=True,
        )
    return None


def load_library(settings: InstallSettings):
    """The library: the one the user pointed to, else the package's own."""
    from brainsam import binding

    return binding.load_library(settings.library or None)


def library_problem(settings: InstallSettings) -> Optional[Problem]:
    """None when the package imports and a library loads, else what is missing (naming
    the file or the loader's message)."""
    problem = package_problem()
    if problem is not None:
        return problem
    if settings.library and not Path(settings.library).is_file():
        return Problem(
            f"The library set in BrainSAM's settings does not exist: {settings.library}. "
            "Choose the libbrainsam file again, or clear the setting to use the package's own."
        )
    try:
        load_library(settings)
    except Exception as error:  # noqa: BLE001 - any loader failure is reported, not raised
        return Problem(f"libbrainsam cannot be loaded: {error}")
    return None


def install_package(util, source: str) -> Optional[Problem]:
    """pip-install `source` into Slicer's Python (slicer.util.pip_install); None on
    success, else what went wrong."""
    source = (source or "").strip()
    if not source:
        return Problem("No package source set: enter 'brainsam', a wheel file or a URL.", True)
    if source.endswith(".whl") and "://" not in source and not Path(source).is_file():
        return Problem(f"The wheel file {source} does not exist.", True)
    util.showStatusMessage(f"Installing BrainSAM ({source}) with pip; this may take a few minutes...")
    try:
        util.pip_install(source)
    except Exception as error:  # noqa: BLE001 - pip failures are reported to the user
        logging.error("BrainSAM: pip install %s failed: %s", source, error)
        return Problem(f"pip install {source} failed: {error}", True)
    problem = package_problem()
    if problem is None:
        util.showStatusMessage("BrainSAM installed.", 5000)
    return problem


def ensure_ready(util, settings: InstallSettings, ask: bool = True) -> Optional[Problem]:
    """Make BrainSAM usable: when only the package is missing, ask (if `ask`) and
    install it. Returns None when ready, else the problem still there (the caller shows
    it without a modal dialog)."""
    problem = library_problem(settings)
    if problem is None or not problem.installable or not ask:
        return problem
    if not util.confirmOkCancelDisplay(
        "BrainSAM needs its Python package 'brainsam' (the model runtime, about a few "
        f"hundred MB with its dependencies).\n\nInstall it now with pip from "
        f"'{settings.package_source}'?\n\n(The source can be changed in the BrainSAM "
        "module's Installation settings.)",
        "BrainSAM: install the package?",
    ):
        return problem
    installed = install_package(util, settings.package_source)
    if installed is not None:
        return installed
    return library_problem(settings)
