"""Model settings stored in Slicer's settings (qt.QSettings keys BrainSAM/...)."""

from __future__ import annotations

from dataclasses import dataclass

#: Keys in Slicer's settings.
CHECKPOINT_KEY = "BrainSAM/Checkpoint"
ADAPTER_KEY = "BrainSAM/Adapter"
DEVICE_KEY = "BrainSAM/Device"

DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class ModelSettings:
    """Which model to load. Empty checkpoint: the library's bundled default model."""

    checkpoint: str = ""
    adapter: str = ""
    device: str = "auto"


def _text(value) -> str:
    # QSettings returns None (or a QVariant-ish empty value) for missing keys.
    return "" if value is None else str(value).strip()


def read_settings(qsettings) -> ModelSettings:
    """The stored settings; unknown device values fall back to auto."""
    device = _text(qsettings.value(DEVICE_KEY)).lower() or "auto"
    if device not in DEVICE_CHOICES:
        device = "auto"
    return ModelSettings(
        checkpoint=_text(qsettings.value(CHECKPOINT_KEY)),
        adapter=_text(qsettings.value(ADAPTER_KEY)),
        device=device,
    )


def write_settings(qsettings, settings: ModelSettings) -> None:
    """Store the settings."""
    if settings.device not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {settings.device!r}")
    qsettings.setValue(CHECKPOINT_KEY, settings.checkpoint)
    qsettings.setValue(ADAPTER_KEY, settings.adapter)
    qsettings.setValue(DEVICE_KEY, settings.device)
