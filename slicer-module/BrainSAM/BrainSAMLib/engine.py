"""The model-side state shared by the module and the effect: library, model and session.

Every method here runs on the worker thread (see worker.py); the Slicer side passes in
numpy arrays and matrices it took on the main thread and gets numpy label volumes back.
Knows nothing about Slicer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from brainsam import binding

from . import geometry
from .settings import ModelSettings
from .structures import STRUCTURES


@dataclass
class SegmentationResult:
    """Labels [k, j, i] and which structures to write back (class ids)."""

    labels: np.ndarray
    structures: tuple
    #: class id -> (volume mm^3, confidence); only for segment_all
    stats: dict = field(default_factory=dict)
    #: slices changed (interactive work), for the status line
    slices: tuple = ()


class Engine:
    """Library, model and one session; use from one thread (the worker) only."""

    def __init__(self, library_loader: Callable[[], binding.Library] = binding.load_library):
        self._library_loader = library_loader
        self._library: Optional[binding.Library] = None
        self._model: Optional[binding.Model] = None
        self._model_settings: Optional[ModelSettings] = None
        self._session: Optional[binding.Session] = None
        self._volume_key = None

    @property
    def volume_key(self):
        """Key of the volume the session holds (None: none)."""
        return self._volume_key

    def library(self) -> binding.Library:
        """The library, loaded on first use."""
        if self._library is None:
            self._library = self._library_loader()
        return self._library

    def ensure_model(self, settings: ModelSettings) -> None:
        """Load the model for `settings`, unless it is already loaded (a change drops the
        session too, since it belongs to the old model)."""
        if self._model is not None and settings == self._model_settings:
            return
        self.close()
        self._model = self.library().load_model(
            checkpoint=settings.checkpoint or None,
            adapter=settings.adapter or None,
            device=settings.device,
        )
        self._model_settings = settings
        self._session = self._model.session()

    def set_volume(self, key, array: Optional[np.ndarray], ijk_to_ras) -> None:
        """Give the session the volume `key` unless it already has it. `array` may be None
        only when the key is unchanged."""
        if self._session is None:
            raise binding.BrainSAMError(6, "no model loaded")
        if key == self._volume_key and key is not None:
            return
        if array is None:
            raise binding.BrainSAMError(6, "the volume changed: its voxels are needed again")
        self._volume_key = None
        self._session.set_volume(array, ijk_to_ras)
        self._volume_key = key

    def session(self) -> binding.Session:
        """The session, with a volume."""
        if self._session is None or self._volume_key is None:
            raise binding.BrainSAMError(6, "no volume given to BrainSAM yet")
        return self._session

    def segment_all(self, progress=None) -> SegmentationResult:
        """Automatic segmentation of all structures, with statistics."""
        session = self.session()
        session.segment_all(progress)
        labels = session.copy_labels()
        stats = {s.class_id: session.structure_stats(s.class_id) for s in STRUCTURES}
        return SegmentationResult(labels, tuple(s.class_id for s in STRUCTURES), stats)

    def slicing_axis(self) -> int:
        """The library's coronal voxel axis for the current volume."""
        return self.session().slicing_axis()

    def add_point_and_segment(self, structure: int, ijk, positive: bool) -> SegmentationResult:
        """Add a point prompt and re-segment its slice."""
        session = self.session()
        slice_index = geometry.slice_of(ijk, session.slicing_axis())
        session.add_point(structure, ijk, positive)
        session.segment_structure(structure, slice_index)
        return SegmentationResult(session.copy_labels(), (structure,), slices=(slice_index,))

    def add_box_and_segment(self, structure: int, ijk_a, ijk_b) -> SegmentationResult:
        """Add a box prompt (corners moved onto one slice) and re-segment that slice."""
        session = self.session()
        axis = session.slicing_axis()
        a, b = geometry.box_on_slice(ijk_a, ijk_b, axis)
        session.add_box(structure, a, b)
        slice_index = geometry.slice_of(a, axis)
        session.segment_structure(structure, slice_index)
        return SegmentationResult(session.copy_labels(), (structure,), slices=(slice_index,))

    def segment_slice(self, structure: int, slice_index: int) -> SegmentationResult:
        """Re-run the decoder for one structure on one slice with its prompts."""
        session = self.session()
        session.segment_structure(structure, slice_index)
        return SegmentationResult(session.copy_labels(), (structure,), slices=(slice_index,))

    def clear_prompts(self, structure: int, slice_index: Optional[int] = None) -> None:
        """Drop the prompts of a structure (one slice or all)."""
        self.session().clear_prompts(structure, slice_index)

    def propagate(
        self, structure: int, start: int, direction: str, max_slices: int, progress=None
    ) -> SegmentationResult:
        """Propagate a structure from slice `start` (see geometry.iterate_propagation)."""
        session = self.session()
        done = tuple(
            geometry.iterate_propagation(
                session, structure, start, direction, max_slices, progress=progress
            )
        )
        return SegmentationResult(session.copy_labels(), (structure,), slices=done)

    def close(self) -> None:
        """Free the session and the model."""
        if self._session is not None:
            self._session.close()
        if self._model is not None:
            self._model.close()
        self._session = self._model = self._model_settings = None
        self._volume_key = None
