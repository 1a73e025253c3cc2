"""BrainSAM settings, persisted in Slicer's settings (qt.QSettings keys BrainSAM/...).

Model settings (which model, on which device, at which precision) and the test-time
views of the automatic segmentation; installation settings (where the `brainsam`
package comes from, or which libbrainsam to load). Knows nothing about Slicer: it works
on anything with QSettings' value()/setValue().
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Keys in Slicer's settings.
CHECKPOINT_KEY = "BrainSAM/Checkpoint"
ADAPTER_KEY = "BrainSAM/Adapter"
DEVICE_KEY = "BrainSAM/Device"
PRECISION_KEY = "BrainSAM/Precision"
MIRROR_KEY = "BrainSAM/MirrorViews"
SHIFT_KEY = "BrainSAM/ShiftViews"
ORIENTATION_KEY = "BrainSAM/OrientationViews"
LIBRARY_KEY = "BrainSAM/Library"
PACKAGE_SOURCE_KEY = "BrainSAM/PackageSource"

#: Device choices offered in the settings; "cuda:N" (any N) is accepted as well.
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:0", "cuda:1")
#: Precisions of the image encoder (masks are always computed in fp32).
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
#: What `pip install` gets by default: the BrainSAM wheel from PyPI.
DEFAULT_PACKAGE_SOURCE = "brainsam"

_DEVICE = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")


def valid_device(device: str) -> bool:
    """Whether `device` is auto, cpu, cuda or cuda:N."""
    return bool(_DEVICE.match(device))


@dataclass(frozen=True)
class ModelSettings:
    """Which model to load and how to run it. Empty checkpoint: the default model."""

    checkpoint: str = ""
    adapter: str = ""
    device: str = "auto"
    precision: str = "auto"
    #: automatic segmentation also segments the mirrored slices (more accurate, 2x time)
    mirror_views: bool = True
    #: automatic segmentation also segments slices shifted by half a patch (4x time)
    shift_views: bool = True
    #: automatic segmentation also runs the model's other slice orientations, e.g. the
    #: default model's axial and sagittal models, averaging in 3D (more accurate, 2x time)
    orientation_views: bool = True

    def model_key(self) -> tuple:
        """What the loaded model depends on (a change reloads the model)."""
        return (self.checkpoint, self.adapter, self.device, self.precision)

    def session_key(self) -> tuple:
        """What the session depends on besides the model (a change makes a new session)."""
        return (self.mirror_views, self.shift_views, self.orientation_views)


@dataclass(frozen=True)
class InstallSettings:
    """Where the BrainSAM package and library come from."""

    #: libbrainsam the user points to (empty: the one of the installed package / extension)
    library: str = ""
    #: what to pip-install when the package is missing: a package name (with an optional
    #: version), a wheel file path or a URL
    package_source: str = DEFAULT_PACKAGE_SOURCE


def _text(value) -> str:
    # QSettings returns None (or an empty QVariant-ish value) for missing keys.
    return "" if value is None else str(value).strip()


def _flag(value, default: bool) -> bool:
    # QSettings stores booleans as "true"/"false" strings in .ini files.
    text = _text(value).lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    return default


def read_settings(qsettings) -> ModelSettings:
    """The stored model settings; unknown device or precision values fall back to auto."""
    device = _text(qsettings.value(DEVICE_KEY)).lower() or "auto"
    if not valid_device(device):
        device = "auto"
    precision = _text(qsettings.value(PRECISION_KEY)).lower() or "auto"
    if precision not in PRECISION_CHOICES:
        precision = "auto"
    return ModelSettings(
        checkpoint=_text(qsettings.value(CHECKPOINT_KEY)),
        adapter=_text(qsettings.value(ADAPTER_KEY)),
        device=device,
        precision=precision,
        mirror_views=_flag(qsettings.value(MIRROR_KEY), True),
        shift_views=_flag(qsettings.value(SHIFT_KEY), True),
        orientation_views=_flag(qsettings.value(ORIENTATION_KEY), True),
    )


def write_settings(qsettings, settings: ModelSettings) -> None:
    """Store the model settings; ValueError naming a bad device or precision."""
    if not valid_device(settings.device):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {settings.device!r}")
    if settings.precision not in PRECISION_CHOICES:
        raise ValueError(
            f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {settings.precision!r}"
        )
    qsettings.setValue(CHECKPOINT_KEY, settings.checkpoint)
    qsettings.setValue(ADAPTER_KEY, settings.adapter)
    qsettings.setValue(DEVICE_KEY, settings.device)
    qsettings.setValue(PRECISION_KEY, settings.precision)
    qsettings.setValue(MIRROR_KEY, "true" if settings.mirror_views else "false")
    qsettings.setValue(SHIFT_KEY, "true" if settings.shift_views else "false")
    qsettings.setValue(ORIENTATION_KEY, "true" if settings.orientation_views else "false")


def read_install_settings(qsettings) -> InstallSettings:
    """The stored installation settings."""
    return InstallSettings(
        library=_text(qsettings.value(LIBRARY_KEY)),
        package_source=_text(qsettings.value(PACKAGE_SOURCE_KEY)) or DEFAULT_PACKAGE_SOURCE,
    )


def write_install_settings(qsettings, settings: InstallSettings) -> None:
    """Store the installation settings."""
    qsettings.setValue(LIBRARY_KEY, settings.library)
    qsettings.setValue(PACKAGE_SOURCE_KEY, settings.package_source or DEFAULT_PACKAGE_SOURCE)
