"""The Slicer-independent logic of the BrainSAM module, for real: structure naming and
colours, IJK/RAS conversions, views and slices, propagation order and boxes, settings,
installation checks, and the task runner that polls library jobs."""

import sys
import types

import numpy as np
import pytest

from BrainSAMLib import geometry
from brainsam.binding import BrainSAMError, decompose_ijk_to_ras
from BrainSAMLib import install
from BrainSAMLib.settings import (
    InstallSettings,
    ModelSettings,
    read_install_settings,
    read_settings,
    write_install_settings,
    write_settings,
)
from BrainSAMLib.structures import STRUCTURES, structure, structure_for_segment_id
from BrainSAMLib.tasks import TaskRunner

LIA = np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])


# --- structures ------------------------------------------------------------------------


def test_structures_follow_the_class_ids_and_freesurfer_colours():
    assert [s.class_id for s in STRUCTURES] == list(range(1, 13))
    assert [s.name for s in STRUCTURES[:4]] == ["Left-Thalamus", "Right-Thalamus", "Left-Caudate", "Right-Caudate"]
    assert STRUCTURES[11].name == "Right-Amygdala"
    expected = {"Thalamus": (0, 118, 14), "Caudate": (122, 186, 220), "Putamen": (236, 13, 176),
                "Pallidum": (12, 48, 255), "Hippocampus": (220, 216, 20), "Amygdala": (103, 255, 255)}
    for s in STRUCTURES:
        if s.name != "Right-Pallidum":
            assert s.rgb == expected[s.name.split("-")[1]]
        assert all(0.0 <= c <= 1.0 for c in s.colour)
    assert structure(8).rgb == (13, 48, 255)  # FreeSurferColorLUT's Right-Pallidum
    assert len({s.segment_id for s in STRUCTURES}) == 12
    assert len({s.rgb for s in STRUCTURES}) == 7
    assert structure(9).name == "Left-Hippocampus"
    assert structure_for_segment_id("BrainSAM_Right_Pallidum").class_id == 8
    assert structure_for_segment_id("Segment_1") is None
    for bad in (0, 13, "x", None):
        with pytest.raises(ValueError):
            structure(bad)


def test_slicer_structures_agree_with_the_library(lib):
    """The module's table (needed before a library is loaded) is the library's."""
    library = lib.structures()
    assert [(s.class_id, s.name, s.rgb) for s in STRUCTURES] == [
        (info.class_id, info.freesurfer_name, info.rgb) for info in library
    ]


def test_slicer_device_and_precision_choices_are_what_the_library_parses(lib):
    """The settings panel offers fixed choices and checks stored values before a library
    is installed; every choice it offers or accepts must parse in the library, which
    parses device and precision names for every layer."""
    from BrainSAMLib.settings import DEVICE_CHOICES, PRECISION_CHOICES, valid_device

    for device in DEVICE_CHOICES:
        assert valid_device(device)
        lib.parse_device(device)
    for precision in PRECISION_CHOICES:
        lib.parse_precision(precision)
    for accepted in ("cuda:7", "cuda:12"):
        assert valid_device(accepted)
        assert lib.parse_device(accepted)[1] == int(accepted.split(":")[1])
    for refused in ("cuda:", "cuda:x", "tpu", ""):
        assert not valid_device(refused)
        # By name: under Slicer's Pythons the binding may be imported under two paths.
        with pytest.raises(Exception) as caught:
            lib.parse_device(refused)
        assert type(caught.value).__name__ == "BrainSAMError"
        assert "INVALID_ARGUMENT" in str(caught.value)


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


# --- views and slices ------------------------------------------------------------------


def test_coronal_axis_and_view_orientation():
    lia = matrix([1.0, 1.0, 1.0], LIA, [0, 0, 0])
    assert geometry.coronal_axis(lia) == 2  # k runs anterior in LIA
    assert geometry.coronal_axis(np.eye(4)) == 1  # j in RAS
    coronal_view = np.array([[-1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])  # normal A
    axial_view = np.array([[-1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1]])  # normal S
    assert geometry.view_along_axis(coronal_view, lia, 2)
    assert not geometry.view_along_axis(axial_view, lia, 2)
    assert geometry.view_along_axis(axial_view, lia, 1)
    tilted = coronal_view.copy()
    angle = np.radians(20)
    tilted[:3, 2] = [0, np.cos(angle), np.sin(angle)]
    assert not geometry.view_along_axis(tilted, lia, 2)


def test_only_the_touched_slices_are_in_the_mask_and_extent():
    labels = np.zeros((6, 7, 8), np.uint8)  # [k, j, i]
    labels[:, 2:5, 3:6] = 4
    labels[:, 0, 0] = 9
    mask = geometry.structure_on_slices(labels, 4, axis=1, slices=[3])
    assert mask.dtype == np.uint8
    assert mask[:, 3, 3:6].all() and mask.sum() == 6 * 3
    assert not mask[:, 2, :].any() and not mask[:, 4, :].any()
    assert geometry.slices_extent(labels.shape, 1, [3, 5]) == [0, 7, 3, 5, 0, 5]
    assert geometry.slices_extent(labels.shape, 2, [1]) == [0, 7, 0, 6, 1, 1]


# --- settings --------------------------------------------------------------------------


class DictSettings:
    def __init__(self):
        self.store = {}

    def value(self, key, default=None):
        return self.store.get(key, default)

    def setValue(self, key, value):
        self.store[key] = value


def test_settings_default_round_trip_and_bad_values():
    qsettings = DictSettings()
    assert read_settings(qsettings) == ModelSettings()
    assert ModelSettings().mirror_views and ModelSettings().shift_views and ModelSettings().orientation_views
    chosen = ModelSettings("/m/model.pt", "/m/lora.pt", "cuda:1", "bf16", mirror_views=False, shift_views=True,
                           orientation_views=False)
    write_settings(qsettings, chosen)
    assert qsettings.store["BrainSAM/Device"] == "cuda:1"
    assert qsettings.store["BrainSAM/MirrorViews"] == "false"
    assert qsettings.store["BrainSAM/OrientationViews"] == "false"
    assert read_settings(qsettings) == chosen
    # QSettings .ini files give strings back; a restart reads the same settings.
    reloaded = DictSettings()
    reloaded.store = {k: str(v) for k, v in qsettings.store.items()}
    assert read_settings(reloaded) == chosen
    qsettings.store["BrainSAM/Device"] = "TPU"
    qsettings.store["BrainSAM/Precision"] = "fp8"
    assert read_settings(qsettings).device == "auto" and read_settings(qsettings).precision == "auto"
    with pytest.raises(ValueError, match="tpu"):
        write_settings(qsettings, ModelSettings(device="tpu"))
    with pytest.raises(ValueError, match="cuda:x"):
        write_settings(qsettings, ModelSettings(device="cuda:x"))
    with pytest.raises(ValueError, match="fp8"):
        write_settings(qsettings, ModelSettings(precision="fp8"))
    # A model change reloads the model; a views change only remakes the session.
    assert chosen.model_key() != ModelSettings().model_key()
    assert ModelSettings(mirror_views=False).model_key() == ModelSettings().model_key()
    assert ModelSettings(mirror_views=False).session_key() != ModelSettings().session_key()
    assert ModelSettings(orientation_views=False).model_key() == ModelSettings().model_key()
    assert ModelSettings(orientation_views=False).session_key() != ModelSettings().session_key()
    assert ModelSettings(orientation_views=False).session_key() != ModelSettings(shift_views=False).session_key()


def test_install_settings_round_trip():
    qsettings = DictSettings()
    assert read_install_settings(qsettings) == InstallSettings("", "brainsam")
    write_install_settings(qsettings, InstallSettings("/opt/libbrainsam.so", "/tmp/brainsam-1.0-py3-none-any.whl"))
    assert read_install_settings(qsettings) == InstallSettings("/opt/libbrainsam.so", "/tmp/brainsam-1.0-py3-none-any.whl")
    write_install_settings(qsettings, InstallSettings("", ""))
    assert read_install_settings(qsettings).package_source == "brainsam"


# --- installation -----------------------------------------------------------------------


class FakeUtil:
    """slicer.util's part that installation uses: records questions, pip runs, messages."""

    def __init__(self, answer, pip_effect=None):
        self.answer, self.pip_effect = answer, pip_effect
        self.asked, self.installed, self.status = [], [], []

    def confirmOkCancelDisplay(self, text, windowTitle=None, **kwargs):
        self.asked.append(text)
        return self.answer

    def pip_install(self, source):
        self.installed.append(source)
        if self.pip_effect:
            self.pip_effect(source)

    def showStatusMessage(self, message, duration=0):
        self.status.append(message)


@pytest.fixture
def without_brainsam(monkeypatch):
    """As in a fresh Slicer: `import brainsam` fails."""
    for name in list(sys.modules):
        if name == "brainsam" or name.startswith("brainsam."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not p.endswith("/python")])
    import importlib.abc

    class Block(importlib.abc.MetaPathFinder):
        blocked = True

        def find_spec(self, name, path=None, target=None):
            if self.blocked and (name == "brainsam" or name.startswith("brainsam.")):
                raise ImportError(f"No module named {name!r}")
            return None

    blocker = Block()
    monkeypatch.setattr(sys, "meta_path", [blocker, *sys.meta_path])
    return blocker


def test_a_missing_package_is_named_and_installed_only_after_asking(without_brainsam):
    problem = install.library_problem(InstallSettings())
    assert problem.installable and "brainsam" in problem.message and "not installed" in problem.message
    # Declined: nothing installed, the problem stays (shown without a dialog).
    util = FakeUtil(answer=False)
    assert install.ensure_ready(util, InstallSettings(), ask=True).installable
    assert len(util.asked) == 1 and util.installed == []
    # Not asked (e.g. while only showing the state): nothing installed.
    util = FakeUtil(answer=True)
    assert install.ensure_ready(util, InstallSettings(), ask=False) is not None and util.asked == []

    # Accepted: pip installs the configured source; afterwards the package imports.
    def pip_effect(source):
        without_brainsam.blocked = False

    util = FakeUtil(answer=True, pip_effect=pip_effect)
    wheel_source = "brainsam==0.3"
    problem = install.ensure_ready(util, InstallSettings(library="", package_source=wheel_source), ask=True)
    assert util.installed == [wheel_source]
    assert any("Installing BrainSAM" in m for m in util.status)
    # The package imports now; whether its library loads depends on this machine's build.
    assert problem is None or "libbrainsam" in problem.message


def test_a_failed_pip_install_and_a_missing_wheel_are_named(without_brainsam):
    def fail(source):
        raise RuntimeError("Could not find a version that satisfies the requirement brainsam")

    util = FakeUtil(answer=True, pip_effect=fail)
    problem = install.ensure_ready(util, InstallSettings(package_source="brainsam"), ask=True)
    assert "pip install brainsam failed" in problem.message and "satisfies" in problem.message
    util = FakeUtil(answer=True)
    problem = install.ensure_ready(util, InstallSettings(package_source="/nowhere/brainsam-1.0-py3-none-any.whl"))
    assert "/nowhere/brainsam-1.0-py3-none-any.whl does not exist" in problem.message and util.installed == []


def test_a_library_path_that_does_not_exist_is_named(tmp_path):
    missing = tmp_path / "libbrainsam.so"
    problem = install.library_problem(InstallSettings(library=str(missing)))
    assert problem is not None and str(missing) in problem.message and not problem.installable
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not a library")
    problem = install.library_problem(InstallSettings(library=str(junk)))
    assert problem is not None and "cannot be loaded" in problem.message


# --- task runner ------------------------------------------------------------------------


class FakeJob:
    """A library job stand-in that finishes after `polls` progress calls."""

    def __init__(self, polls=3, fail=None, total=4):
        self.polls, self.fail, self.total = polls, fail, total
        self.seen, self.cancelled, self.closed = 0, False, False

    def progress(self):
        self.seen += 1
        if self.cancelled:
            return self.total, self.total, "cancelled"
        if self.seen < self.polls:
            return self.seen, self.total, "running"
        return self.total, self.total, "failed" if self.fail else "finished"

    def wait(self):
        if self.fail:
            raise self.fail
        return "cancelled" if self.cancelled else "finished"

    def cancel(self):
        self.cancelled = True

    def close(self):
        self.closed = True


def empty_steps(task):
    """A task with no job."""
    return None
    yield


def run(runner, limit=100):
    for _ in range(limit):
        if not runner.busy:
            return
        runner.poll()
    raise AssertionError("runner still busy")


def test_tasks_run_jobs_in_order_and_deliver_results_and_progress():
    runner, events, jobs = TaskRunner(), [], []

    def steps(name, count):
        def make(task):
            for n in range(count):
                job = FakeJob()
                jobs.append(job)
                events.append(f"{name} start {n}")
                yield job
            return name

        return make

    runner.submit(steps("a", 2), on_done=events.append, on_progress=lambda d, t: events.append((d, t)))
    runner.submit(steps("b", 1), on_done=events.append)
    assert runner.busy
    runner.poll()
    assert events[:1] == ["a start 0"] and "b start 0" not in events  # one job at a time
    run(runner)
    assert [e for e in events if isinstance(e, str)] == ["a start 0", "a start 1", "a", "b start 0", "b"]
    assert (4, 4) in events and all(job.closed for job in jobs)


def test_a_failed_job_is_raised_into_its_task_and_reported():
    from brainsam.binding import BrainSAMError

    runner, errors, done = TaskRunner(), [], []

    def steps(task):
        yield FakeJob(fail=BrainSAMError(1, "slice 400 is outside 0..63"))
        done.append("not reached")

    runner.submit(steps, on_done=done.append, on_error=errors.append)
    runner.submit(empty_steps, on_done=done.append)  # next task still runs
    run(runner)
    assert len(errors) == 1 and "slice 400" in str(errors[0]) and done == [None]


def test_cancel_stops_the_running_job_and_drops_queued_tasks():
    runner, outcome = TaskRunner(), []
    job = FakeJob(polls=10_000)

    def steps(task):
        yield job
        outcome.append("resumed after cancel")

    runner.submit(steps, on_cancelled=lambda: outcome.append("cancelled running"))
    runner.submit(empty_steps, on_cancelled=lambda: outcome.append("cancelled queued"),
                  on_done=lambda r: outcome.append("queued ran"))
    runner.poll()
    runner.cancel_all()
    assert job.cancelled
    run(runner)
    assert outcome == ["cancelled running", "cancelled queued"] and job.closed


def test_a_failing_callback_does_not_lose_the_others():
    runner, delivered = TaskRunner(), []

    def bad(result):
        raise RuntimeError("widget gone")

    def one(value):
        def make(task):
            yield FakeJob(polls=1)
            return value

        return make

    runner.submit(one(1), on_done=bad)
    runner.submit(one(2), on_done=delivered.append)
    with pytest.raises(RuntimeError, match="widget gone"):
        for _ in range(10):
            runner.poll()
    run(runner)
    assert delivered == [2]


def test_propagation_is_one_library_job_whose_slices_and_progress_the_task_reports():
    from BrainSAMLib.engine import Engine

    class PropagationSession:
        """Session stand-in: start_propagate_structure returns a job that finishes with
        the slices the library says it segmented."""

        def __init__(self):
            self.calls, self.labels = [], np.zeros((30, 30, 30), np.uint8)

        def start_propagate_structure(self, structure, start, direction, max_slices):
            self.calls.append((structure, start, direction, max_slices))
            job = FakeJob(polls=3, total=6)
            job.slices = None
            real_wait = job.wait

            def wait():
                outcome = real_wait()
                if outcome == "finished":
                    job.slices = (16, 17, 18, 14, 13, 12)
                return outcome

            job.wait = wait
            return job

        def copy_labels(self):
            return self.labels.copy()

        def slicing_axis(self):
            return 1

    engine = Engine(library_loader=lambda: None)
    session = PropagationSession()
    engine._session, engine._volume_key = session, "volume"
    runner, results, progress = TaskRunner(), [], []
    runner.submit(lambda task: engine.propagate_steps(task, 6, 15, "both", 20),
                  on_done=results.append, on_progress=lambda d, t: progress.append((d, t)))
    run(runner, limit=1000)
    assert session.calls == [(6, 15, "both", 20)]
    assert results[0].slices == (16, 17, 18, 14, 13, 12) and results[0].structures == (6,)
    assert results[0].axis == 1 and progress[0] == (1, 6) and progress[-1] == (6, 6)
    # A cancelled propagation applies nothing.
    cancelled, results = [], []
    task = runner.submit(lambda task: engine.propagate_steps(task, 6, 15, "forward", 3),
                         on_done=results.append, on_cancelled=lambda: cancelled.append(True))
    runner.poll()
    task.cancel()
    run(runner, limit=1000)
    assert cancelled == [True] and results == []


def test_the_engine_gives_the_session_the_test_time_views_and_remakes_only_the_session():
    import inspect

    from brainsam.binding import Session
    from BrainSAMLib.engine import Engine

    sessions, models = [], []

    class FakeSession:
        def __init__(self, options):
            self.options, self.closed = options, False

        def close(self):
            self.closed = True

    class FakeModel:
        def session(self, **options):
            # The options are ones the real binding's Session takes.
            inspect.signature(Session.__init__).bind(None, None, **options)
            sessions.append(FakeSession(options))
            return sessions[-1]

        def close(self):
            pass

    class FakeLibrary:
        def load_model(self, **kwargs):
            models.append(kwargs)
            return FakeModel()

    engine = Engine(library_loader=FakeLibrary)
    engine.ensure_model(ModelSettings())
    assert sessions[-1].options == {"mirror_averaging": True, "shift_averaging": True, "view_averaging": True}
    engine.ensure_model(ModelSettings())
    assert len(sessions) == 1 and len(models) == 1, "same settings: same model and session"
    engine.ensure_model(ModelSettings(orientation_views=False))
    assert len(models) == 1 and len(sessions) == 2 and sessions[0].closed
    assert sessions[-1].options == {"mirror_averaging": True, "shift_averaging": True, "view_averaging": False}
    engine.ensure_model(ModelSettings(mirror_views=False, shift_views=False, orientation_views=True))
    assert len(models) == 1 and len(sessions) == 3
    assert sessions[-1].options == {"mirror_averaging": False, "shift_averaging": False, "view_averaging": True}
