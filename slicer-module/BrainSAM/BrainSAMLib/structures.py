"""The 12 structures as Slicer segments: class id -> segment id, name and FreeSurfer colour."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Structure:
    """One segmentable structure."""

    class_id: int  #: label value in the library's label volume (1..12)
    name: str  #: segment name shown in Slicer (FreeSurfer LUT name)
    segment_id: str  #: stable segment id in the segmentation node
    rgb: tuple  #: FreeSurfer LUT colour, 0..255

    @property
    def colour(self) -> tuple:
        """The colour as Slicer wants it (floats in [0, 1])."""
        return tuple(c / 255.0 for c in self.rgb)


# FreeSurfer LUT colours (left, right), as the library's brainsam_get_structure_info gives
# them (tests/python/test_slicer_logic.py checks that the two agree); FreeSurfer gives
# left and right the same colour except for the pallidum.
_COLOURS = {
    "Thalamus": ((0, 118, 14), (0, 118, 14)),
    "Caudate": ((122, 186, 220), (122, 186, 220)),
    "Putamen": ((236, 13, 176), (236, 13, 176)),
    "Pallidum": ((12, 48, 255), (13, 48, 255)),
    "Hippocampus": ((220, 216, 20), (220, 216, 20)),
    "Amygdala": ((103, 255, 255), (103, 255, 255)),
}

#: Class ids 1..12 in the paper's order: L/R thalamus, caudate, putamen, pallidum,
#: hippocampus, amygdala.
STRUCTURES: tuple = tuple(
    Structure(
        class_id=2 * index + side + 1,
        name=f"{'Left' if side == 0 else 'Right'}-{part}",
        segment_id=f"BrainSAM_{'Left' if side == 0 else 'Right'}_{part}",
        rgb=rgbs[side],
    )
    for index, (part, rgbs) in enumerate(_COLOURS.items())
    for side in (0, 1)
)

_BY_ID = {s.class_id: s for s in STRUCTURES}


def structure(class_id: int) -> Structure:
    """The structure with this class id (1..12); ValueError otherwise."""
    try:
        return _BY_ID[int(class_id)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"structure id must be 1..12, got {class_id!r}") from None


def structure_for_segment_id(segment_id: str) -> Structure | None:
    """The structure a BrainSAM segment id stands for, or None for other segments."""
    for candidate in STRUCTURES:
        if candidate.segment_id == segment_id:
            return candidate
    return None
