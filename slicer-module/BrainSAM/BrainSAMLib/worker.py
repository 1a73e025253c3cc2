"""One persistent worker thread with a job queue, so that Slicer's UI never blocks.

All model work runs on the worker thread, in submission order. Outcomes and progress are
queued back; the main thread calls `drain()` (from a Qt timer) to run the callbacks there,
where touching Qt/VTK/MRML is safe. Knows nothing about Slicer.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Optional

from brainsam.binding import BrainSAMError

CANCELLED_STATUS = 8


class Job:
    """A unit of work. The function receives the Job and may call `report(done, total)`,
    which returns True once the job was cancelled (pass it as the library's progress)."""

    def __init__(self, function, on_done, on_error, on_cancelled, on_progress, description):
        self.function = function
        self.on_done = on_done
        self.on_error = on_error
        self.on_cancelled = on_cancelled
        self.on_progress = on_progress
        self.description = description
        self._cancel = threading.Event()
        self.state = "queued"  # queued, running, done, failed, cancelled
        self._worker: Optional["JobWorker"] = None

    @property
    def cancelled(self) -> bool:
        """Whether cancel() was called."""
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the job to stop: skipped if not started, else stopped at the next report()."""
        self._cancel.set()

    def report(self, done: int, total: int) -> bool:
        """Progress from the worker thread; returns True when the job should stop."""
        if self._worker is not None:
            self._worker._post(("progress", self, (int(done), int(total))))
        return self.cancelled


class JobWorker:
    """A daemon thread running submitted jobs one at a time."""

    def __init__(self, name: str = "BrainSAM worker"):
        self._jobs: "queue.Queue[Optional[Job]]" = queue.Queue()
        self._events: "queue.Queue[tuple]" = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """Whether a job is queued or running (or its outcome not yet drained)."""
        with self._lock:
            return self._pending > 0

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        return self._thread.is_alive()

    def submit(
        self,
        function: Callable[[Job], Any],
        on_done: Optional[Callable[[Any], None]] = None,
        on_error: Optional[Callable[[BaseException], None]] = None,
        on_cancelled: Optional[Callable[[], None]] = None,
        on_progress: Optional[Callable[[int, int], None]] = None,
        description: str = "",
    ) -> Job:
        """Queue `function(job)`; its result goes to on_done, an exception to on_error
        (a cancellation to on_cancelled), all called from drain() on the caller's thread."""
        if not self.alive:
            raise RuntimeError("the BrainSAM worker thread has stopped")
        job = Job(function, on_done, on_error, on_cancelled, on_progress, description)
        job._worker = self
        with self._lock:
            self._pending += 1
        self._jobs.put(job)
        return job

    def cancel_all(self) -> None:
        """Cancel every queued and running job."""
        with self._jobs.mutex:
            queued = [job for job in self._jobs.queue if job is not None]
        for job in queued:
            job.cancel()
        current = getattr(self, "_current", None)
        if current is not None:
            current.cancel()

    def shutdown(self, timeout: float | None = 10.0) -> None:
        """Cancel all jobs and stop the thread (waits up to `timeout` seconds)."""
        self.cancel_all()
        self._jobs.put(None)
        self._thread.join(timeout)

    def _post(self, event: tuple) -> None:
        self._events.put(event)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self._current = job
            if job.cancelled:
                job.state = "cancelled"
                self._post(("cancelled", job, None))
                continue
            job.state = "running"
            try:
                result = job.function(job)
            except BaseException as error:  # noqa: BLE001 - reported, never kills the thread
                if job.cancelled or (
                    isinstance(error, BrainSAMError) and error.status == CANCELLED_STATUS
                ):
                    job.state = "cancelled"
                    self._post(("cancelled", job, None))
                else:
                    job.state = "failed"
                    self._post(("error", job, error))
            else:
                job.state = "done"
                self._post(("done", job, result))
            finally:
                self._current = None

    def drain(self) -> int:
        """Run the callbacks of everything that happened since the last call (on the
        calling thread, normally Qt's main thread). Progress is coalesced to the latest
        per job. Returns the number of outcomes delivered. A callback that raises does not
        stop the others; its exception is re-raised after all were delivered."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                break
        latest_progress = {}
        for kind, job, payload in events:
            if kind == "progress":
                latest_progress[id(job)] = (job, payload)
        delivered = 0
        first_error = None
        for kind, job, payload in events:
            try:
                if kind == "progress":
                    if latest_progress.get(id(job), (None, None))[1] is payload and job.on_progress:
                        job.on_progress(*payload)
                    continue
                with self._lock:
                    self._pending -= 1
                delivered += 1
                if kind == "done" and job.on_done:
                    job.on_done(payload)
                elif kind == "error" and job.on_error:
                    job.on_error(payload)
                elif kind == "cancelled" and job.on_cancelled:
                    job.on_cancelled()
            except Exception as error:  # noqa: BLE001
                first_error = first_error or error
        if first_error is not None:
            raise first_error
        return delivered
