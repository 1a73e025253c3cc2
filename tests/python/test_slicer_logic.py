"""The Slicer-independent logic of the BrainSAM module, for real: structure naming and
colours, IJK/RAS conversions, propagation order and boxes, settings, the job worker."""

import threading
import time

import numpy as np
import pytest

from BrainSAMLib import geometry
from brainsam.binding import BrainSAMError, decompose_ijk_to_ras
from BrainSAMLib.settings import ModelSettings, read_settings, write_settings
from BrainSAMLib.structures import STRUCTURES, structure, structure_for_segment_id
from BrainSAMLib.worker import JobWorker

LIA = np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])


# --- structures ------------------------------------------------------------------------


def test_structures_follow_the_class_ids_and_freesurfer_colours():
    assert [s.class_id for s in STRUCTURES] == list(range(1, 13))
    assert [s.name for s in STRUCTURES[:4]] == ["Left-Thalamus", "Right-Thalamus", "Left-Caudate", "Right-Caudate"]
    assert STRUCTURES[11].name == "Right-Amygdala"
    expected = {"Thalamus": (0, 118, 14), "Caudate": (122, 186, 220), "Putamen": (236, 13, 176),
                "Pallidum": (12, 48, 255), "Hippocampus": (220, 216, 20), "Amygdala": (103, 255, 255)}
    for s in STRUCTURES:
        assert s.rgb == expected[s.name.split("-")[1]]
        assert all(0.0 <= c <= 1.0 for c in s.colour)
    assert len({s.segment_id for s in STRUCTURES}) == 12
    assert len({s.rgb for s in STRUCTURES}) == 6
    assert structure(9).name == "Left-Hippocampus"
    assert structure_for_segment_id("BrainSAM_Right_Pallidum").class_id == 8
    assert structure_for_segment_id("Segment_1") is None
    for bad in (0, 13, "x", None):
        with pytest.raises(ValueError):
            structure(bad)


# --- geometry --------------------------------------------------------------------------


def matrix(spacing, direction, origin):
    m = np.eye(4)
    m[:3, :3] = np.asarray(direction) * np.asarray(spacing)[None, :]
    m[:3, 3] = origin
    return m


def test_ras_ijk_round_trip_and_known_point():
    m = matrix([1.0, 2.0, 3.0], LIA, [128.0, -128.0, 128.0])
    ras = geometry.ijk_to_ras([10, 20, 30], m)
    assert ras == pytest.approx([128 - 10, -128 + 90, 128 - 40])
    assert geometry.ras_to_ijk(ras, m) == pytest.approx([10, 20, 30])


def test_decompose_ijk_to_ras_gives_the_c_api_geometry():
    m = matrix([0.5, 1.5, 2.0], LIA, [1.0, 2.0, 3.0])
    spacing, origin, direction = decompose_ijk_to_ras(m)
    assert spacing == pytest.approx([0.5, 1.5, 2.0])
    assert origin == pytest.approx([1, 2, 3])
    assert direction == pytest.approx(LIA)
    m[:3, 1] = 0
    spacing, _, direction = decompose_ijk_to_ras(m)
    assert spacing[1] == 0 and direction[:, 1] == pytest.approx([0, 1, 0])
    with pytest.raises(BrainSAMError, match="4x4"):
        decompose_ijk_to_ras(np.eye(3))


def test_inside_slice_of_and_box_on_slice():
    shape = (20, 24, 28)  # k, j, i
    assert geometry.inside([0, 0, 0], shape) and geometry.inside([27.4, 23.4, 19.4], shape)
    assert not geometry.inside([27.6, 0, 0], shape) and not geometry.inside([0, -0.6, 0], shape)
    assert geometry.slice_of([3.0, 7.5, 1.0], 1) == 8 and geometry.slice_of([3.0, 7.4, 1.0], 1) == 7
    a, b = geometry.box_on_slice([2, 7.2, 3], [9, 9.8, 5], axis=1)
    assert a == [2.0, 7.0, 3.0] and b == [9.0, 7.0, 5.0]


def test_propagation_runs_go_outward_from_the_start():
    assert geometry.propagation_runs(5, 10, "forward", 100) == [[(6, 5), (7, 6), (8, 7), (9, 8)]]
    assert geometry.propagation_runs(2, 10, "backward", 100) == [[(1, 2), (0, 1)]]
    assert geometry.propagation_runs(5, 10, "both", 2) == [[(6, 5), (7, 6)], [(4, 5), (3, 4)]]
    assert geometry.propagation_runs(0, 1, "both", 5) == [[], []]
    with pytest.raises(ValueError):
        geometry.propagation_runs(10, 10, "both", 5)
    with pytest.raises(ValueError):
        geometry.propagation_runs(1, 10, "sideways", 5)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_box_from_mask_uses_the_previous_slice_bounding_box(axis):
    labels = np.zeros((20, 24, 28), np.uint8)  # [k, j, i]
    ijk_lo, ijk_hi = [5, 6, 7], [9, 11, 12]
    ijk_lo[axis] = ijk_hi[axis] = 4
    labels[ijk_lo[2]:ijk_hi[2] + 1, ijk_lo[1]:ijk_hi[1] + 1, ijk_lo[0]:ijk_hi[0] + 1] = 3
    a, b = geometry.box_from_mask(labels, 3, axis, from_slice=4, to_slice=5, margin=1)
    for c in range(3):
        if c == axis:
            assert a[c] == b[c] == 5
        else:
            assert (a[c], b[c]) == (ijk_lo[c] - 1, ijk_hi[c] + 1)
    assert geometry.box_from_mask(labels, 3, axis, from_slice=5, to_slice=6) is None
    assert geometry.box_from_mask(labels, 4, axis, from_slice=4, to_slice=5) is None


def test_box_from_mask_is_clipped_to_the_volume():
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[2, 0:6, 0:1] = 1
    a, b = geometry.box_from_mask(labels, 1, 2, 2, 3, margin=3)
    assert a == [0.0, 0.0, 3.0] and b == [3.0, 5.0, 3.0]


class ShrinkingSession:
    """Session stand-in: segment_structure writes the box (shrunk by the margin) minus
    one voxel per side on the slice, so structures end after a few slices."""

    def __init__(self, labels, axis):
        self.labels, self.axis, self.calls = labels, axis, []
        self.box = None

    def slicing_axis(self):
        return self.axis

    def slice_count(self):
        return self.labels.shape[2 - self.axis]

    def copy_labels(self, out=None):
        if out is None:
            return self.labels.copy()
        out[...] = self.labels
        return out

    def clear_prompts(self, structure, slice_index):
        self.calls.append(("clear", slice_index))

    def add_box(self, structure, a, b):
        self.calls.append(("box", a[self.axis]))
        self.box = (a, b)

    def segment_structure(self, structure, slice_index):
        self.calls.append(("segment", slice_index))
        a, b = self.box
        lo = [int(a[c]) + 3 for c in range(3)]  # margin 2 + shrink 1
        hi = [int(b[c]) - 3 for c in range(3)]
        lo[self.axis] = hi[self.axis] = slice_index
        if all(lo[c] <= hi[c] for c in range(3)):
            self.labels[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] = structure


def test_propagation_visits_neighbours_in_order_and_stops_when_the_structure_ends():
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[10:20, 15, 10:20] = 6  # a 10x10 square on slice 15 of axis j
    session = ShrinkingSession(labels, axis=1)
    done = list(geometry.iterate_propagation(session, 6, 15, "both", max_slices=20))
    # The square shrinks by one voxel per side per slice: 8, 6, 4, 2 wide on slices 16..19,
    # empty on 20, where the forward run stops; likewise backward down to 10.
    assert done == [16, 17, 18, 19, 20, 14, 13, 12, 11, 10]
    segmented = [s for kind, s in session.calls if kind == "segment"]
    assert segmented == done
    assert not (session.labels[:, 20, :] == 6).any() and (session.labels[:, 19, :] == 6).any()
    assert ("box", 16) in session.calls and session.calls[0] == ("clear", 16)
    assert np.count_nonzero(session.labels[:, 17, :] == 6) == 36


def test_propagation_stops_when_progress_asks():
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[5:25, 15, 5:25] = 2
    session = ShrinkingSession(labels, axis=1)
    done = list(geometry.iterate_propagation(session, 2, 15, "forward", 20, progress=lambda d, t: d >= 2))
    assert done == [16, 17]


# --- settings --------------------------------------------------------------------------


class DictSettings:
    def __init__(self):
        self.store = {}

    def value(self, key, default=None):
        return self.store.get(key, default)

    def setValue(self, key, value):
        self.store[key] = value


def test_settings_default_round_trip_and_bad_device():
    qsettings = DictSettings()
    assert read_settings(qsettings) == ModelSettings("", "", "auto")
    write_settings(qsettings, ModelSettings("/m/model.pt", "/m/lora.pt", "cuda"))
    assert qsettings.store == {"BrainSAM/Checkpoint": "/m/model.pt", "BrainSAM/Adapter": "/m/lora.pt", "BrainSAM/Device": "cuda"}
    assert read_settings(qsettings) == ModelSettings("/m/model.pt", "/m/lora.pt", "cuda")
    qsettings.store["BrainSAM/Device"] = "TPU"
    assert read_settings(qsettings).device == "auto"
    with pytest.raises(ValueError, match="tpu"):
        write_settings(qsettings, ModelSettings(device="tpu"))


# --- worker ----------------------------------------------------------------------------


def drain_until(worker, condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "worker did not finish in time"
        worker.drain()
        time.sleep(0.005)


@pytest.fixture
def worker():
    created = JobWorker()
    yield created
    created.shutdown()


def test_jobs_run_in_order_on_one_other_thread_and_results_arrive_on_drain(worker):
    threads, results = [], []
    release = threading.Event()
    worker.submit(lambda job: release.wait(5) and threads.append(threading.get_ident()) or "first",
                  on_done=results.append)
    for n in range(5):
        worker.submit(lambda job, n=n: threads.append(threading.get_ident()) or n, on_done=results.append)
    assert worker.busy
    time.sleep(0.05)
    assert worker.drain() == 0 and results == []  # nothing delivered while the first job blocks
    release.set()
    drain_until(worker, lambda: not worker.busy)
    assert results == ["first", 0, 1, 2, 3, 4]
    assert len(set(threads)) == 1 and threads[0] != threading.get_ident()


def test_errors_are_delivered_and_the_worker_keeps_going(worker):
    errors, results = [], []

    def fail(job):
        raise BrainSAMError(4, "bad checkpoint")

    worker.submit(fail, on_done=results.append, on_error=errors.append)
    worker.submit(lambda job: 42, on_done=results.append)
    drain_until(worker, lambda: not worker.busy)
    assert results == [42] and len(errors) == 1 and "bad checkpoint" in str(errors[0])
    assert worker.alive


def test_cancel_queued_and_running_jobs(worker):
    started, outcomes, progress = threading.Event(), [], []

    def long_job(job):
        started.set()
        for step in range(1000):
            if job.report(step, 1000):
                raise BrainSAMError(8, "cancelled by the caller")
            time.sleep(0.002)
        return "finished"

    running = worker.submit(long_job, on_done=outcomes.append, on_cancelled=lambda: outcomes.append("cancelled running"),
                            on_progress=lambda d, t: progress.append((d, t)))
    queued = worker.submit(lambda job: outcomes.append("queued ran"), on_cancelled=lambda: outcomes.append("cancelled queued"))
    assert started.wait(5)
    time.sleep(0.05)
    worker.cancel_all()
    drain_until(worker, lambda: not worker.busy)
    assert outcomes == ["cancelled running", "cancelled queued"]
    assert running.state == "cancelled" and queued.state == "cancelled"
    assert progress and all(t == 1000 for _, t in progress)
    assert len(progress) < 100  # coalesced to the latest per drain
    # A cancellation reported by the library without cancel() is still a cancellation.
    worker.submit(lambda job: (_ for _ in ()).throw(BrainSAMError(8, "x")), on_cancelled=lambda: outcomes.append("lib"))
    drain_until(worker, lambda: not worker.busy)
    assert outcomes[-1] == "lib"


def test_a_failing_callback_does_not_lose_the_others(worker):
    delivered = []

    def bad(result):
        raise RuntimeError("widget gone")

    worker.submit(lambda job: 1, on_done=bad)
    worker.submit(lambda job: 2, on_done=delivered.append)
    deadline = time.monotonic() + 5
    while worker.busy and time.monotonic() < deadline:
        try:
            worker.drain()
        except RuntimeError as error:
            assert "widget gone" in str(error)
        time.sleep(0.005)
    assert delivered == [2]


def test_shutdown_stops_the_thread():
    worker = JobWorker()
    worker.shutdown()
    assert not worker.alive
    with pytest.raises(RuntimeError, match="stopped"):
        worker.submit(lambda job: None)
