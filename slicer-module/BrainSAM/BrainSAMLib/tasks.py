"""Main-thread tasks made of library jobs, polled from a Qt timer.

Why not a Python worker thread: Slicer does not enable PythonQt's thread support, so the
main thread holds Python's GIL while Qt runs, and a Python thread only advances in the
moments the main thread runs Python (a timer tick). Long work would crawl. Here the long
work runs on library threads (binding.Job, brainsam_job_* in the C ABI), which never
need the GIL; the main thread only polls them and runs the short Python glue between
jobs. Knows nothing about Slicer.

A task is a generator built by `steps(task)`: it does short work on the main thread and
yields either a started binding.Job (the runner resumes the generator once the job has
ended; a failed job is raised into it) or None (resume at the next poll, so the UI can
repaint in between). Its return value is the task's result.
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Optional

CANCELLED_STATUS = 8


class Task:
    """One queued unit of work and its callbacks (all called on the polling thread)."""

    def __init__(self, steps, description, on_done, on_error, on_cancelled, on_progress):
        self._make_steps = steps
        self.description = description
        self.on_done = on_done
        self.on_error = on_error
        self.on_cancelled = on_cancelled
        self.on_progress = on_progress
        self.state = "queued"  # queued, running, done, failed, cancelled
        #: Whether the progress of the job in flight is the task's progress (off for tasks
        #: that report their own progress across several jobs).
        self.follow_job_progress = True
        self.job = None
        self.cancelled = False
        self._generator = None
        self._progress = None

    def report(self, done: int, total: int) -> bool:
        """Progress of the task (delivered at once when it changed); returns True once
        the task was cancelled (usable as the library's progress callback shape)."""
        value = (int(done), int(total))
        if value != self._progress:
            self._progress = value
            if self.on_progress is not None:
                self.on_progress(*value)
        return self.cancelled

    def cancel(self) -> None:
        """Stop: a queued task never starts; a running one stops its job and is not
        resumed."""
        self.cancelled = True
        if self.job is not None:
            try:
                self.job.cancel()
            except Exception:  # noqa: BLE001 - the job may have ended; the poll sees it
                pass


class TaskRunner:
    """Runs tasks one after another on the thread that calls poll()."""

    def __init__(self):
        self._queue: "collections.deque[Task]" = collections.deque()
        self._current: Optional[Task] = None
        self._polling = False

    @property
    def busy(self) -> bool:
        """Whether a task is queued or running."""
        return self._current is not None or bool(self._queue)

    @property
    def current(self) -> Optional[Task]:
        """The running task, if any."""
        return self._current

    def submit(
        self,
        steps: Callable[[Task], Any],
        description: str = "",
        on_done: Optional[Callable[[Any], None]] = None,
        on_error: Optional[Callable[[BaseException], None]] = None,
        on_cancelled: Optional[Callable[[], None]] = None,
        on_progress: Optional[Callable[[int, int], None]] = None,
    ) -> Task:
        """Queue a task; `steps(task)` makes its generator when it starts."""
        task = Task(steps, description, on_done, on_error, on_cancelled, on_progress)
        self._queue.append(task)
        return task

    def cancel_all(self) -> None:
        """Cancel the running task and everything queued."""
        for task in list(self._queue):
            task.cancel()
        if self._current is not None:
            self._current.cancel()

    def poll(self) -> None:
        """Advance: deliver finished jobs, run the glue between jobs, start the next
        jobs. Never blocks on a job. A callback that raises does not stop the others;
        its exception is re-raised at the end. A poll from inside a callback (e.g. one
        that processes events) returns at once."""
        if self._polling:
            return
        self._polling = True
        try:
            self._poll()
        finally:
            self._polling = False

    def _poll(self) -> None:
        errors = []
        while True:
            task = self._current
            if task is None:
                if not self._queue:
                    break
                task = self._current = self._queue.popleft()
                if task.cancelled:
                    self._finish(task, "cancelled", None, errors)
                    continue
                task.state = "running"
                try:
                    task._generator = task._make_steps(task)
                except Exception as error:  # noqa: BLE001 - reported
                    self._finish(task, "failed", error, errors)
                    continue
                if not self._advance(task, None, errors):
                    break
                continue
            if task.job is None:
                if task.cancelled:
                    task._generator.close()
                    self._finish(task, "cancelled", None, errors)
                    continue
                if not self._advance(task, None, errors):
                    break
                continue
            try:
                done, total, state = task.job.progress()
            except Exception as error:  # noqa: BLE001 - the library failed to answer
                self._close_job(task)
                self._finish(task, "failed", error, errors)
                continue
            if state == "running":
                if task.follow_job_progress:
                    self._call(task.report, errors, done, total)
                break
            job = task.job
            try:
                outcome = job.wait()  # returns at once: the job has ended
            except Exception as error:  # noqa: BLE001 - a failed job
                self._close_job(task)
                if task.cancelled:
                    task._generator.close()
                    self._finish(task, "cancelled", None, errors)
                    continue
                if not self._advance(task, error, errors):
                    break
                continue
            self._close_job(task)
            if task.follow_job_progress and total:
                self._call(task.report, errors, done, total)
            if outcome == "cancelled" or task.cancelled:
                task._generator.close()
                self._finish(task, "cancelled", None, errors)
                continue
            if not self._advance(task, None, errors):
                break
        if errors:
            raise errors[0]

    def run_until_idle(self, sleep, timeout: float, clock) -> None:
        """Poll until no task is left (scripts and tests); `sleep(seconds)` between polls
        (e.g. processing events), TimeoutError after `timeout` seconds of `clock()`."""
        deadline = clock() + timeout
        while self.busy:
            if clock() > deadline:
                raise TimeoutError(f"BrainSAM still busy after {timeout} s")
            self.poll()
            if self.busy:
                sleep(0.01)

    # -- internals ---------------------------------------------------------------------

    @staticmethod
    def _close_job(task: Task) -> None:
        job, task.job = task.job, None
        try:
            job.close()
        except Exception:  # noqa: BLE001 - freeing never fails the task
            pass

    @staticmethod
    def _call(function, errors, *args) -> None:
        try:
            function(*args)
        except Exception as error:  # noqa: BLE001 - a UI callback failed
            errors.append(error)

    def _advance(self, task: Task, error: Optional[BaseException], errors) -> bool:
        """Resume the generator (raising `error` into it when a job failed). Returns True
        when the runner should go on at once, False to wait for the next poll."""
        try:
            if error is not None:
                step = task._generator.throw(error)
            else:
                step = task._generator.send(None)
        except StopIteration as stop:
            self._finish(task, "done", stop.value, errors)
            return True
        except Exception as raised:  # noqa: BLE001 - reported
            if task.cancelled or getattr(raised, "status", None) == CANCELLED_STATUS:
                self._finish(task, "cancelled", None, errors)
            else:
                self._finish(task, "failed", raised, errors)
            return True
        if step is None:
            return False  # the task asked for a turn of the event loop
        task.job = step
        if task.cancelled:
            task.cancel()
        return True

    def _finish(self, task: Task, state: str, payload, errors) -> None:
        task.state = state
        task.job = None
        if self._current is task:
            self._current = None
        if state == "done" and task.on_done is not None:
            self._call(task.on_done, errors, payload)
        elif state == "failed" and task.on_error is not None:
            self._call(task.on_error, errors, payload)
        elif state == "cancelled" and task.on_cancelled is not None:
            self._call(task.on_cancelled, errors)
