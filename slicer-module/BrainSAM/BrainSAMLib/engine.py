"""The model-side state shared by the module and the effect: library, model and session,
and the steps of each kind of work as tasks (see tasks.py) whose long parts are library
jobs. Everything here runs on the main thread; the long work runs on library threads.
Knows nothing about Slicer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

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
    #: slices changed by interactive work (empty: the whole volume)
    slices: tuple = ()
    #: the voxel axis the slices are along
    axis: int = 1


def _default_loader():
    from brainsam import binding

    return binding.load_library()


class Engine:
    """Library, model and one session; used from one thread (the main thread)."""

    def __init__(self, library_loader: Callable[[], object] = _default_loader):
        self._library_loader = library_loader
        self._library = None
        self._model = None
        self._model_key = None
        self._session = None
        self._session_key = None
        self._volume_key = None

    @property
    def volume_key(self):
        """Key of the volume the session holds (None: none)."""
        return self._volume_key

    def library(self):
        """The library, loaded on first use."""
        if self._library is None:
            self._library = self._library_loader()
        return self._library

    def ensure_model(self, settings: ModelSettings) -> None:
        """Load the model and make the session for `settings`, unless they are loaded
        already (a model change drops the session too: it belongs to the old model)."""
        if self._model is None or settings.model_key() != self._model_key:
            self.close()
            self._model = self.library().load_model(
                checkpoint=settings.checkpoint or None,
                adapter=settings.adapter or None,
                device=settings.device,
                precision=settings.precision,
            )
            self._model_key = settings.model_key()
        if self._session is None or settings.session_key() != self._session_key:
            if self._session is not None:
                self._session.close()
            self._session = None
            self._volume_key = None
            self._session = self._model.session(
                mirror_averaging=settings.mirror_views,
                shift_averaging=settings.shift_views,
                view_averaging=settings.orientation_views,
            )
            self._session_key = settings.session_key()

    def needs_volume(self, key) -> bool:
        """Whether the session must be given the volume `key` (its voxels are needed)."""
        return self._session is None or key is None or key != self._volume_key

    def set_volume(self, key, array: Optional[np.ndarray], ijk_to_ras) -> None:
        """Give the session the volume `key` unless it already has it."""
        from brainsam.binding import BrainSAMError

        if self._session is None:
            raise BrainSAMError(6, "no model loaded")
        if not self.needs_volume(key):
            return
        if array is None:
            raise BrainSAMError(6, "the volume changed: its voxels are needed again")
        self._volume_key = None
        self._session.set_volume(array, ijk_to_ras)
        self._volume_key = key

    def forget_volume(self) -> None:
        """Send the volume again next time (after a failure)."""
        self._volume_key = None

    def session(self):
        """The session, with a volume."""
        from brainsam.binding import BrainSAMError

        if self._session is None or self._volume_key is None:
            raise BrainSAMError(6, "no volume given to BrainSAM yet")
        return self._session

    # -- work, as task steps -------------------------------------------------------------

    def segment_all_steps(self, task):
        """Automatic segmentation of all structures, with statistics."""
        session = self.session()
        yield session.start_segment_all()
        labels = session.copy_labels()
        stats = {s.class_id: session.structure_stats(s.class_id) for s in STRUCTURES}
        return SegmentationResult(labels, tuple(s.class_id for s in STRUCTURES), stats)

    def _slice_result(self, session, structure: int, slices) -> SegmentationResult:
        return SegmentationResult(
            session.copy_labels(), (structure,), slices=tuple(slices), axis=session.slicing_axis()
        )

    def point_steps(self, task, structure: int, ijk, positive: bool):
        """Add a point prompt and re-segment the coronal slice through it."""
        session = self.session()
        # The library says which slice the prompt landed on.
        slice_index = session.add_point(structure, ijk, positive)
        yield session.start_segment_structure(structure, slice_index)
        return self._slice_result(session, structure, (slice_index,))

    def box_steps(self, task, structure: int, ijk_a, ijk_b):
        """Add a box prompt (corners put on the first corner's slice) and re-segment it."""
        session = self.session()
        axis = session.slicing_axis()
        a, b = geometry.box_on_slice(ijk_a, ijk_b, axis)
        slice_index = session.add_box(structure, a, b)
        yield session.start_segment_structure(structure, slice_index)
        return self._slice_result(session, structure, (slice_index,))

    def propagate_steps(self, task, structure: int, start: int, direction: str, max_slices: int):
        """Propagate a structure from its mask on slice `start` through the neighbouring
        slices ("both", "forward" or "backward"; at most `max_slices` per direction): one
        library job (brainsam_session_propagate_structure_start) whose progress counts
        slices; cancelling the task cancels it. The result's slices are those segmented."""
        session = self.session()
        job = session.start_propagate_structure(structure, start, direction, max_slices)
        yield job
        return self._slice_result(session, structure, job.slices)

    def clear_prompts(self, structure: int, slice_index: Optional[int] = None) -> None:
        """Drop the prompts of a structure (one slice or all); nothing to do before the
        session has a volume."""
        if self._session is None or self._volume_key is None:
            return
        self._session.clear_prompts(structure, slice_index)

    def close(self) -> None:
        """Free the session and the model."""
        if self._session is not None:
            self._session.close()
        if self._model is not None:
            self._model.close()
        self._session = self._model = None
        self._model_key = self._session_key = self._volume_key = None
