"""Long work under PythonQt's GIL behaviour, with the real library.

Slicer does not enable PythonQt's thread support: its main thread holds Python's GIL
while Qt runs and only runs Python in slots (a timer's timeout). The stand-in here does
the same: `pythonqt_loop` holds the GIL through a C call made with ctypes.PyDLL (which,
unlike ctypes.CDLL, does not release it) between timer ticks, and runs the timer's
Python at each tick.

Measured: the automatic segmentation as a library job polled from the UI timer (the
module's design) finishes within 3x of the time its steps take without any UI (plus
the tick that starts it and the tick that sees it end), and
propagation (one library job) costs at most one poll per slice on top of the same
propagation called directly; the previous design (a Python
worker thread calling the library with a progress callback) is shown to crawl under the
same stand-in, so the stand-in does model the problem.
"""

import ctypes
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from test_binding_session import ijk_to_ras, synthetic_volume

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "slicer-module" / "BrainSAM"))

from BrainSAMLib.engine import Engine  # noqa: E402
from BrainSAMLib.settings import ModelSettings  # noqa: E402
from BrainSAMLib.tasks import TaskRunner  # noqa: E402

#: The module's poll interval (BrainSAM.POLL_INTERVAL_MS) and the previous module's timer.
POLL_S = 0.010
OLD_TIMER_S = 0.100

_usleep_holding_the_gil = ctypes.PyDLL(None).usleep
_usleep_holding_the_gil.argtypes = [ctypes.c_uint]


def pythonqt_loop(done, tick, interval_s, observe=lambda: 0, timeout_s=300.0):
    """The main thread as under PythonQt: GIL held between ticks, `tick()` (a timer slot)
    every `interval_s`, until `done()`. Returns the number of ticks and how much
    `observe()` (e.g. slices done) grew in all."""
    deadline = time.monotonic() + timeout_s
    ticks, first = 0, observe()
    while not done():
        assert time.monotonic() < deadline, "work did not finish under the stand-in event loop"
        _usleep_holding_the_gil(int(interval_s * 1e6))
        ticks += 1
        tick()
    return ticks, observe() - first


@pytest.fixture(scope="module")
def engine():
    checkpoint, library = os.environ.get("BRAINSAM_TEST_CHECKPOINT"), os.environ.get("BRAINSAM_LIBRARY")
    if not checkpoint or not library:
        pytest.skip("skipped: BRAINSAM_TEST_CHECKPOINT and BRAINSAM_LIBRARY (set by scripts/test) not set")
    from brainsam import binding

    made = Engine(lambda: binding.load_library(library))
    made.ensure_model(ModelSettings(checkpoint=checkpoint, device="cpu"))
    made.set_volume("volume", synthetic_volume(), ijk_to_ras(direction=np.eye(3)))
    yield made
    made.close()


def blocking_segment_all(engine):
    start = time.perf_counter()
    engine.session().segment_all()
    return time.perf_counter() - start


def blocking_steps(engine, steps):
    """The same steps the UI runs (jobs and the glue between them: labels, statistics),
    each job waited for at once: the time they take without any UI."""
    start = time.perf_counter()
    generator = steps(None)
    try:
        job = next(generator)
        while True:
            job.wait()
            job.close()
            job = generator.send(None)
    except StopIteration:
        pass
    return time.perf_counter() - start


def ui_task(engine, steps, interval_s):
    runner, results = TaskRunner(), []
    runner.submit(steps, on_done=results.append, on_error=results.append)

    def slices_done():
        # Read straight from the job (a ctypes call, as the timer would make).
        task = runner.current
        return task.job.progress()[0] if task is not None and task.job is not None else 0

    start = time.perf_counter()
    ticks, _ = pythonqt_loop(lambda: not runner.busy, runner.poll, interval_s, slices_done)
    elapsed = time.perf_counter() - start
    assert len(results) == 1 and not isinstance(results[0], BaseException), results
    return elapsed, results[0], ticks


def test_segment_all_as_a_polled_job_runs_at_full_speed_under_the_gil(engine):
    blocking_segment_all(engine)  # warm up (embeddings, allocations)
    expected = engine.session().copy_labels()
    for interval in (POLL_S, OLD_TIMER_S):
        # Alternate with the blocking call so that both see the same machine load.
        alone, under_ui = [], []
        for _ in range(3):
            alone.append(blocking_steps(engine, engine.segment_all_steps))
            elapsed, result, ticks = ui_task(engine, engine.segment_all_steps, interval)
            under_ui.append(elapsed)
            np.testing.assert_array_equal(result.labels, expected)
        alone, elapsed = min(alone), min(under_ui)
        print(f"segment_all: {alone:.2f} s blocking, {elapsed:.2f} s as a job polled every {interval * 1e3:.0f} ms "
              f"under the GIL ({elapsed / alone:.2f}x, {ticks} ticks)")
        # It is not held back by the ticks: it finishes within 3x of its time without a UI
        # (a design that advances once per tick takes a tick per slice: about 10x longer
        # with the 100 ms ticks, see the next test; 3x, not less, because CI machines run
        # other jobs beside this one: 2x was seen under load),
        # plus the tick that starts the job (TaskRunner starts queued work at its next
        # poll) and the tick that sees it end.
        assert elapsed <= 3 * alone + 2 * interval, f"{elapsed:.2f} s under the stand-in UI vs {alone:.2f} s without"


def test_the_previous_python_worker_design_crawls_under_the_same_stand_in(engine):
    """Validates the stand-in: a Python thread whose progress callback needs the GIL
    advances only at the main thread's ticks."""
    alone = blocking_segment_all(engine)
    calls = []
    worker = threading.Thread(target=lambda: engine.session().segment_all(lambda d, t: calls.append(d)))
    start = time.perf_counter()
    worker.start()
    ticks, in_all = pythonqt_loop(lambda: not worker.is_alive(), lambda: None, OLD_TIMER_S, lambda: len(calls))
    elapsed = time.perf_counter() - start
    worker.join()
    print(f"previous design: {alone:.2f} s blocking, {elapsed:.2f} s in a Python thread under the GIL "
          f"({elapsed / alone:.1f}x): {in_all} progress callbacks in {ticks} ticks")
    # Each callback needs the GIL, which the main thread hands over only when it runs
    # Python (a tick): the work advances about one callback per tick, however fast the
    # library is. (The same work as a polled job is not held back: see above.)
    assert in_all > 10 and in_all <= 2 * ticks + 1
    assert elapsed >= 0.45 * in_all * OLD_TIMER_S


def test_propagation_costs_at_most_one_poll_per_slice(engine):
    session = engine.session()
    session.segment_all()
    labels = session.copy_labels()
    axis = session.slicing_axis()
    counts = np.count_nonzero(labels == 9, axis=tuple(a for a in range(3) if a != 2 - axis))
    if not counts.any():
        pytest.skip("skipped: the random test model segmented no left hippocampus to propagate")
    start_slice = int(np.argmax(counts))
    start = time.perf_counter()
    blocking = list(session.propagate_structure(9, start_slice, "both", 40))
    alone = time.perf_counter() - start
    session.segment_all()  # the same starting labels
    elapsed, result, _ = ui_task(engine, lambda task: engine.propagate_steps(task, 9, start_slice, "both", 40), POLL_S)
    print(f"propagation over {len(blocking)} slices: {alone:.2f} s blocking, {elapsed:.2f} s as polled jobs")
    assert list(result.slices) == blocking
    assert elapsed <= 1.5 * (alone + len(blocking) * POLL_S)
