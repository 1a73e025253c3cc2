"""The "Adapt to my data" panel's logic: segment names -> structures, label volumes from
segments, and the adaptation as a TaskRunner task (brainsam.adapt.Adapt polled from the
Qt timer, so training never blocks the UI). Knows nothing about Slicer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from .structures import STRUCTURES, structure_for_segment_id

#: Structure parts and the words users give them.
_PARTS = {
    "thalamus": "Thalamus",
    "caudate": "Caudate",
    "putamen": "Putamen",
    "pallidum": "Pallidum",
    "globus pallidus": "Pallidum",
    "hippocampus": "Hippocampus",
    "amygdala": "Amygdala",
}
_LEFT = {"left", "l", "lh"}
_RIGHT = {"right", "r", "rh"}


def structure_for_segment_name(name: str, segment_id: str = ""):
    """The structure a segment stands for: BrainSAM's own segment ids, or names such as
    "Left-Thalamus", "Left-Thalamus-Proper", "L putamen", "rh_hippocampus",
    "Right Amygdala" (case, '-', '_' and '.' ignored). None when it names none."""
    by_id = structure_for_segment_id(segment_id) if segment_id else None
    if by_id is not None:
        return by_id
    words = [w for w in re.split(r"[\s\-_.]+", name.strip().lower()) if w and w != "proper"]
    if not words:
        return None
    side = None
    rest = []
    for word in words:
        if word in _LEFT and side is None:
            side = "Left"
        elif word in _RIGHT and side is None:
            side = "Right"
        else:
            rest.append(word)
    part = _PARTS.get(" ".join(rest))
    if side is None or part is None:
        return None
    wanted = f"{side}-{part}"
    for candidate in STRUCTURES:
        if candidate.name == wanted:
            return candidate
    return None


@dataclass
class SegmentMapping:
    """How a segmentation's segments map to structures."""

    #: segment id -> class id (1..12)
    classes: Dict[str, int] = field(default_factory=dict)
    #: names of segments that name no structure (ignored)
    ignored: List[str] = field(default_factory=list)
    #: names of segments naming a structure another segment already gave (ignored)
    duplicates: List[str] = field(default_factory=list)

    def note(self) -> str:
        """A one-line note for the user about what is used and ignored."""
        used = len(self.classes)
        text = f"{used} structure{'s' if used != 1 else ''} mapped"
        if self.ignored:
            text += f"; ignored (not one of the 12 structures): {', '.join(self.ignored)}"
        if self.duplicates:
            text += f"; ignored (structure given twice): {', '.join(self.duplicates)}"
        return text


def map_segments(segments: Iterable[Tuple[str, str]]) -> SegmentMapping:
    """Maps (segment id, segment name) pairs to structures; unmapped ones are listed."""
    mapping = SegmentMapping()
    taken = set()
    for segment_id, name in segments:
        found = structure_for_segment_name(name, segment_id)
        if found is None:
            mapping.ignored.append(name)
        elif found.class_id in taken:
            mapping.duplicates.append(name)
        else:
            taken.add(found.class_id)
            mapping.classes[segment_id] = found.class_id
    return mapping


def label_volume(shape, masks: Dict[int, np.ndarray]) -> np.ndarray:
    """Class ids [k, j, i] (uint8) from class id -> boolean mask arrays of `shape`; later
    classes win where masks overlap."""
    labels = np.zeros(shape, dtype=np.uint8)
    for class_id, mask in sorted(masks.items()):
        mask = np.asarray(mask)
        if mask.shape != tuple(shape):
            raise ValueError(
                f"the mask of structure {class_id} has shape {mask.shape}, the volume {tuple(shape)}"
            )
        labels[mask != 0] = class_id
    return labels


class AdaptJob:
    """A brainsam.adapt.Adapt seen as a TaskRunner job: progress() -> (done, total,
    state), cancel(), wait(), close(); the latest figures in `status`."""

    def __init__(self, run):
        self.run = run
        self.status: dict = {}

    def progress(self):
        self.status = self.run.progress()
        return self.status["iteration"], self.status["total"], self.status["state"]

    def cancel(self) -> None:
        self.run.cancel()

    def wait(self) -> str:
        return self.run.wait()

    def close(self) -> None:
        # The adapter stays readable until the task has saved it: see adapt_steps.
        pass


def describe(status: dict) -> str:
    """Progress text: iterations, ETA and the live validation Dice."""
    if not status:
        return "Preparing the data..."
    text = f"Iteration {status.get('iteration', 0)}/{status.get('total', 0)}"
    eta = status.get("eta_seconds", float("nan"))
    if isinstance(eta, float) and math.isfinite(eta):
        minutes, seconds = divmod(int(round(eta)), 60)
        text += f", about {minutes} min {seconds:02d} s left"
    best = status.get("best_validation_dice", float("nan"))
    if isinstance(best, float) and math.isfinite(best):
        text += f", validation Dice {best:.3f}"
    return text


def adapt_steps(
    task,
    model,
    pairs,
    adapter_path: str,
    minutes: float = 0.0,
    on_status: Optional[Callable[[dict], None]] = None,
    make_run: Optional[Callable] = None,
):
    """The adaptation as a TaskRunner task: starts the run, lets the runner poll it, then
    writes the adapter to `adapter_path` (atomically) and returns its final status.
    `pairs`: (image, ijk_to_ras, labels, ijk_to_ras, "classes", name) tuples."""
    if make_run is None:
        from brainsam.adapt import Adapt as make_run  # noqa: N813 - a class used as factory
    run = make_run(model, pairs, minutes=minutes)
    job = AdaptJob(run)
    task.follow_job_progress = False
    original_progress = job.progress

    def progress():
        done, total, state = original_progress()
        if on_status is not None:
            on_status(job.status)
        task.report(done, max(total, 1))
        return done, total, state

    job.progress = progress
    try:
        yield job
        status = run.progress()
        run.save(adapter_path)
        return status
    finally:
        run.close()


#: Settings keys of the adapters made per site: BrainSAM/Sites/<name> = adapter path.
SITES_KEY = "BrainSAM/Sites"


def remember_site(qsettings, name: str, path: str) -> None:
    """Record the adapter made for site `name` (persisted in the settings)."""
    qsettings.setValue(f"{SITES_KEY}/{name}", path)


def site_adapter(qsettings, name: str) -> str:
    """The adapter recorded for site `name` ("" when none)."""
    value = qsettings.value(f"{SITES_KEY}/{name}", "")
    return str(value or "")
