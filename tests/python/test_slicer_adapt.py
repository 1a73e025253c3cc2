"""The "Adapt to my data" panel's Slicer-independent logic: segment names mapped to
structures (unmapped ones noted), label volumes from segment masks, the adaptation as a
TaskRunner task polled without blocking (with a scripted run and with the real library),
progress text with ETA and validation Dice, and the per-site adapter setting."""

import math
import os

import numpy as np
import pytest

from BrainSAMLib import adapt
from BrainSAMLib.tasks import TaskRunner


def test_segment_names_map_to_structures_and_the_rest_is_noted():
    cases = {
        "Left-Thalamus": 1,
        "Left-Thalamus-Proper": 1,
        "right thalamus": 2,
        "L caudate": 3,
        "rh_putamen": 6,
        "Left.Pallidum": 7,
        "R Globus Pallidus": 8,
        "LEFT HIPPOCAMPUS": 9,
        "Right-Amygdala": 12,
    }
    for name, class_id in cases.items():
        found = adapt.structure_for_segment_name(name)
        assert found is not None and found.class_id == class_id, name
    for name in ("Thalamus", "Left", "Left-Cerebral-White-Matter", "tumour", "", "Left Right Putamen"):
        assert adapt.structure_for_segment_name(name) is None, name
    # BrainSAM's own segment ids map whatever the segment is called.
    assert adapt.structure_for_segment_name("renamed", "BrainSAM_Right_Caudate").class_id == 4
    mapping = adapt.map_segments(
        [("s1", "Left-Putamen"), ("s2", "Tumour"), ("s3", "L putamen"), ("s4", "Right-Amygdala")]
    )
    assert mapping.classes == {"s1": 5, "s4": 12}
    assert mapping.ignored == ["Tumour"] and mapping.duplicates == ["L putamen"]
    note = mapping.note()
    assert "2 structures mapped" in note and "Tumour" in note and "given twice" in note


def test_label_volume_from_masks():
    shape = (3, 4, 5)
    a = np.zeros(shape, dtype=np.uint8)
    a[0, 0, 0] = 1
    b = np.zeros(shape, dtype=bool)
    b[1, 2, 3] = True
    labels = adapt.label_volume(shape, {5: a, 12: b})
    assert labels.dtype == np.uint8 and labels.shape == shape
    assert labels[0, 0, 0] == 5 and labels[1, 2, 3] == 12 and labels.sum() == 17
    with pytest.raises(ValueError, match="shape"):
        adapt.label_volume(shape, {1: np.zeros((3, 4, 4))})


def test_progress_text_has_eta_and_dice():
    assert "Preparing" in adapt.describe({})
    text = adapt.describe(
        {"iteration": 40, "total": 160, "eta_seconds": 125.0, "best_validation_dice": 0.8123}
    )
    assert text == "Iteration 40/160, about 2 min 05 s left, validation Dice 0.812"
    text = adapt.describe({"iteration": 0, "total": 0, "eta_seconds": math.nan,
                           "best_validation_dice": math.nan})
    assert "left" not in text and "Dice" not in text


class ScriptedRun:
    """Stands in for brainsam.adapt.Adapt: runs `steps` polls, then finishes (or fails)."""

    def __init__(self, model, pairs, minutes=0.0, steps=3, fail=False):
        self.model, self.pairs, self.minutes = model, pairs, minutes
        self.polls, self.steps, self.fail = 0, steps, fail
        self.saved, self.closed, self.cancelled = None, False, False

    def progress(self):
        self.polls += 1
        done = min(self.polls, self.steps)
        state = "running" if self.polls < self.steps else ("failed" if self.fail else "finished")
        if self.cancelled:
            state = "cancelled"
        return {"state": state, "iteration": done, "total": self.steps, "loss": 0.5,
                "best_validation_dice": 0.7, "eta_seconds": 1.0}

    def cancel(self):
        self.cancelled = True

    def wait(self):
        if self.fail:
            raise RuntimeError("the data was bad")
        return "cancelled" if self.cancelled else "finished"

    def save(self, path):
        self.saved = path

    def close(self):
        self.closed = True


def test_the_adaptation_is_a_task_that_is_polled_and_saves_its_adapter(tmp_path):
    runner = TaskRunner()
    made, statuses, results = [], [], []

    def make_run(model, pairs, minutes=0.0):
        made.append(ScriptedRun(model, pairs, minutes))
        return made[-1]

    path = str(tmp_path / "site.safetensors")
    runner.submit(
        lambda task: adapt.adapt_steps(task, "model", ["pair"], path, 5.0, statuses.append, make_run),
        on_done=results.append,
    )
    runner.poll()  # starts the run, first poll: still running
    assert runner.busy and made and made[0].minutes == 5.0
    assert statuses[-1]["iteration"] == 1
    while runner.busy:
        runner.poll()
    run = made[0]
    assert run.saved == path and run.closed
    assert results and results[0]["state"] == "finished"
    assert [s["iteration"] for s in statuses][-1] == 3


def test_a_failed_or_cancelled_adaptation_saves_nothing(tmp_path):
    runner = TaskRunner()
    made, errors, cancelled = [], [], []

    def make_run(model, pairs, minutes=0.0, fail=True):
        made.append(ScriptedRun(model, pairs, minutes, fail=fail))
        return made[-1]

    runner.submit(
        lambda task: adapt.adapt_steps(task, "m", ["p"], str(tmp_path / "x"), 0.0, None, make_run),
        on_error=errors.append,
    )
    while runner.busy:
        runner.poll()
    assert errors and "bad" in str(errors[0]) and made[0].saved is None and made[0].closed
    task = runner.submit(
        lambda task: adapt.adapt_steps(
            task, "m", ["p"], str(tmp_path / "y"), 0.0, None,
            lambda m, p, minutes=0.0: make_run(m, p, minutes, fail=False),
        ),
        on_cancelled=lambda: cancelled.append(True),
    )
    runner.poll()
    task.cancel()
    while runner.busy:
        runner.poll()
    assert cancelled and made[1].cancelled and made[1].saved is None and made[1].closed


def test_site_adapters_persist_in_the_settings():
    class Settings(dict):
        def value(self, key, default=None):
            return self.get(key, default)

        def setValue(self, key, value):  # noqa: N802 - QSettings' name
            self[key] = value

    settings = Settings()
    assert adapt.site_adapter(settings, "scanner-2") == ""
    adapt.remember_site(settings, "scanner-2", "/a/scanner-2.safetensors")
    assert adapt.site_adapter(settings, "scanner-2") == "/a/scanner-2.safetensors"


def test_the_real_library_adapts_through_the_task_runner(lib, tmp_path):
    checkpoint = os.environ.get("BRAINSAM_TEST_CHECKPOINT")
    if not checkpoint:
        pytest.skip("skipped: BRAINSAM_TEST_CHECKPOINT (a BrainSAM model checkpoint) not set")
    if not hasattr(lib.raw(), "brainsam_adapt_start"):
        pytest.skip(f"{lib.path} has no brainsam_adapt_start yet")
    from test_binding_adapt import phantom

    from brainsam.adapt import Adapt

    image, matrix, labels, _ = phantom()
    runner = TaskRunner()
    statuses, results = [], []
    path = str(tmp_path / "site.safetensors")
    with lib.load_model(checkpoint=checkpoint, device="cpu") as model:
        runner.submit(
            lambda task: adapt.adapt_steps(
                task, model, [(image, matrix, labels, matrix, "freesurfer", "phantom")], path, 0.0,
                statuses.append,
                lambda m, p, minutes=0.0: Adapt(m, p, minutes=minutes, iterations=3, device="cpu"),
            ),
            on_done=results.append,
        )
        polls = 0
        while runner.busy:
            runner.poll()  # never blocks: each poll returns at once
            polls += 1
        assert results and results[0]["state"] == "finished", results
        assert os.path.getsize(path) > 0
        assert polls > 1
