"""Library jobs (brainsam_job_*, binding.Job) against the real library: the same result as
the blocking calls, progress, cancel, failures with the library's message, the session
refusing other calls while a job holds it, and freeing a running job."""

import time

import numpy as np
import pytest

from brainsam.binding import BrainSAMError
from test_binding_session import ijk_to_ras, model, session, session_lib, synthetic_volume  # noqa: F401

CANCELLED, INVALID_ARGUMENT, INVALID_STATE = 8, 1, 6


@pytest.fixture
def loaded(session):  # noqa: F811 - the fixture imported above
    session.set_volume(synthetic_volume(), ijk_to_ras())
    return session


def poll_until_done(job, timeout=120.0):
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        done, total, state = job.progress()
        seen.append((done, total))
        if state != "running":
            return state, seen
        assert time.monotonic() < deadline, "job did not end in time"
        time.sleep(0.002)


def test_segment_all_job_matches_the_blocking_call_and_reports_progress(loaded):
    loaded.segment_all()
    blocking = loaded.copy_labels()
    loaded.clear_prompts(1)
    with loaded.start_segment_all() as job:
        # The job holds the session: other calls are refused, not raced.
        # start_* returns once the job holds the session, so this cannot race it.
        assert job.running
        with pytest.raises(BrainSAMError) as refused:
            loaded.slicing_axis()
        assert refused.value.status == INVALID_STATE and "in use" in str(refused.value)
        state, seen = poll_until_done(job)
        assert state == "finished" and job.wait() == "finished"
        done, total, _ = job.progress()
        assert total == loaded.slice_count() or total > 0
        assert done == total
        dones = [d for d, t in seen if t]
        assert dones == sorted(dones), "progress went backwards"
    np.testing.assert_array_equal(loaded.copy_labels(), blocking)
    assert loaded.slicing_axis() in (0, 1, 2)  # the session is free again


def test_segment_structure_job_changes_only_that_slice(loaded):
    loaded.segment_all()
    before = loaded.copy_labels()
    axis = loaded.slicing_axis()
    slice_index = loaded.slice_count() // 2
    ijk = [20.0, 24.0, 22.0]
    ijk[axis] = float(slice_index)
    loaded.add_point(5, ijk, True)
    with loaded.start_segment_structure(5, slice_index) as job:
        state, _ = poll_until_done(job)
        assert state == "finished"
        assert job.progress()[:2] == (1, 1)
    after = loaded.copy_labels()
    changed = np.nonzero((after != before).any(axis=tuple(a for a in range(3) if a != 2 - axis)))[0]
    assert set(changed.tolist()) <= {slice_index}


def test_a_failing_job_reports_the_library_message(loaded):
    with loaded.start_segment_structure(5, 10_000) as job:
        state, _ = poll_until_done(job)
        assert state == "failed"
        with pytest.raises(BrainSAMError) as failed:
            job.wait()
        assert "10000" in str(failed.value)
    with pytest.raises(BrainSAMError) as bad:
        loaded.start_segment_structure(300, 1)
    assert bad.value.status == INVALID_ARGUMENT and "300" in str(bad.value)


def test_cancel_and_close_stop_a_running_job(loaded):
    job = loaded.start_segment_all()
    job.cancel()
    state, _ = poll_until_done(job)
    # A tiny model may finish before it sees the cancel; both are valid ends.
    assert state in ("cancelled", "finished")
    assert job.wait() == state
    job.close()
    job.close()  # idempotent
    with pytest.raises(BrainSAMError, match="closed"):
        job.progress()
    # Closing a running job cancels it and waits: the session is usable right after.
    running = loaded.start_segment_all()
    running.close()
    assert loaded.slicing_axis() in (0, 1, 2)


def test_propagation_job_matches_the_blocking_call_and_names_wrong_inputs(loaded):
    loaded.segment_all()
    labels = loaded.copy_labels()
    axis = loaded.slicing_axis()
    numpy_axis = 2 - axis
    counts = {s: np.count_nonzero(labels == s, axis=tuple(a for a in range(3) if a != numpy_axis)) for s in range(1, 13)}
    structure = max(counts, key=lambda s: counts[s].max())
    if not counts[structure].any():
        pytest.skip("skipped: the random test model segmented no structure to propagate")
    start = int(np.argmax(counts[structure]))
    blocking = loaded.propagate_structure(structure, start, "both", 2)
    assert 1 <= len(blocking) <= 4 and start not in blocking
    assert all(abs(s - start) <= 2 for s in blocking)
    after = loaded.copy_labels()
    untouched = [s for s in range(labels.shape[numpy_axis]) if s not in blocking]
    np.testing.assert_array_equal(np.take(after, untouched, numpy_axis), np.take(labels, untouched, numpy_axis))
    loaded.segment_all()  # the same starting labels
    with loaded.start_propagate_structure(structure, start, "both", 2) as job:
        state, seen = poll_until_done(job)
        assert state == "finished" and job.wait() == "finished"
        assert job.slices == blocking
        assert seen[-1][1] > 0 and seen[-1][0] <= seen[-1][1]
    np.testing.assert_array_equal(loaded.copy_labels(), after)
    forward = loaded.propagate_structure(structure, start, "forward", 1)
    assert forward in ((), (start + 1,))
    with pytest.raises(ValueError, match="sideways"):
        loaded.propagate_structure(structure, start, "sideways", 2)
    with pytest.raises(ValueError, match="max_slices"):
        loaded.propagate_structure(structure, start, "both", 0)
    first, last = loaded.slice_range()
    if first > 0:
        with pytest.raises(BrainSAMError, match="outside the region of interest"):
            loaded.propagate_structure(structure, first - 1)
    empty = [s for s in range(first, last + 1) if counts[structure][s] == 0]
    if empty:
        with pytest.raises(BrainSAMError) as absent:
            loaded.propagate_structure(structure, empty[0])
        assert absent.value.status == INVALID_ARGUMENT and "absent" in str(absent.value)
