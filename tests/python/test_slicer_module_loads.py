"""The Slicer module and Segment Editor effect files, outside Slicer.

3D Slicer cannot be installed here, so these tests import BrainSAM.py,
SegmentEditorBrainSAM.py and SegmentEditorEffect.py with minimal stand-ins for `slicer`, `qt`,
`ctk`, `vtk` and `SegmentEditorEffects` (tests/python/slicer_standins/). They prove only that
the files load, declare what Slicer expects, and wire to the binding and to the
Slicer-independent logic (worker thread -> main-thread callbacks -> segment writing). They do
NOT prove anything about Slicer's own behaviour: BrainSAMTest runs inside Slicer for that.
"""

import importlib
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).resolve().parent / "slicer_standins"
MODULE_DIRS = [REPO / "slicer-module" / "BrainSAM", REPO / "slicer-module" / "SegmentEditorBrainSAM"]
STANDIN_NAMES = ("slicer", "qt", "ctk", "vtk", "SegmentEditorEffects")
LOADED = ("BrainSAM", "SegmentEditorBrainSAM", "SegmentEditorBrainSAMLib")


def _forget(prefixes):
    for name in list(sys.modules):
        if name.split(".")[0] in prefixes:
            del sys.modules[name]


@pytest.fixture
def slicer_env(monkeypatch):
    for path in [STANDINS, *MODULE_DIRS]:
        monkeypatch.syspath_prepend(str(path))
    _forget(STANDIN_NAMES + LOADED)
    import qt
    import slicer

    slicer.util.errors.clear()
    slicer.util.written.clear()
    slicer.util.volumes.clear()
    qt.QSettings.store = {}
    yield slicer
    brainsam = sys.modules.get("BrainSAM")
    if brainsam is not None and brainsam.BrainSAMLogic._shared is not None:
        brainsam.BrainSAMLogic._shared.worker.shutdown()
        brainsam.BrainSAMLogic._shared = None
    _forget(STANDIN_NAMES + LOADED)


class FakeImageData:
    def __init__(self, dims):
        self.dims = dims

    def GetMTime(self):
        return 7

    def GetDimensions(self):
        return self.dims


class FakeVolumeNode:
    def __init__(self, array, ijk_to_ras):
        self.array, self.matrix = array, ijk_to_ras

    def GetIJKToRASMatrix(self, matrix):
        matrix.DeepCopy(self.matrix)

    def GetParentTransformNode(self):
        return None

    def GetID(self):
        return "vtkMRMLScalarVolumeNode1"

    def GetName(self):
        return "T1"

    def GetImageData(self):
        return FakeImageData(self.array.shape[::-1])


class FakeSegment:
    def __init__(self, name, colour):
        self.name, self.colour = name, tuple(colour)

    def SetName(self, name):
        self.name = name

    def SetColor(self, r, g, b):
        self.colour = (r, g, b)

    def GetColor(self):
        return self.colour


class FakeSegmentation:
    def __init__(self):
        self.segments = {}

    def GetSegment(self, segment_id):
        return self.segments.get(segment_id)

    def AddEmptySegment(self, segment_id, name, colour):
        self.segments[segment_id] = FakeSegment(name, colour)
        return segment_id


class FakeSegmentationNode:
    def __init__(self):
        self.segmentation = FakeSegmentation()
        self.display = None
        self.reference = None

    def GetSegmentation(self):
        return self.segmentation

    def GetParentTransformNode(self):
        return None

    def GetDisplayNode(self):
        return self.display

    def CreateDefaultDisplayNodes(self):
        self.display = object()

    def GetReferenceImageGeometryReferenceRole(self):
        return "referenceImageGeometryRef"

    def GetNodeReference(self, role):
        return self.reference

    def SetReferenceImageGeometryParameterFromVolumeNode(self, volume):
        self.reference = volume


def test_module_files_load_and_declare_what_slicer_expects(slicer_env):
    brainsam = importlib.import_module("BrainSAM")
    module = brainsam.BrainSAM(None)
    assert module.parent.title == "BrainSAM" and module.parent.categories == ["Segmentation"]
    for name in ("BrainSAMWidget", "BrainSAMLogic", "BrainSAMTest"):
        assert hasattr(brainsam, name)
    assert (REPO / "slicer-module" / "BrainSAM" / "Resources" / "UI" / "BrainSAM.ui").is_file()
    icon = REPO / "slicer-module" / "BrainSAM" / "Resources" / "Icons" / "BrainSAM.png"
    assert icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hidden_effect_module_registers_at_startup(slicer_env):
    registering = importlib.import_module("SegmentEditorBrainSAM")
    module = registering.SegmentEditorBrainSAM(None)
    assert module.parent.hidden is True
    assert ("startupCompleted()", module.registerEditorEffect) in slicer_env.app.connections
    effect_source = REPO / "slicer-module" / "SegmentEditorBrainSAM" / "SegmentEditorBrainSAMLib" / "SegmentEditorEffect.py"
    assert effect_source.is_file()


class FakeScriptedEffect:
    def __init__(self):
        self.options = []
        self.undo_states = 0
        self.ijk = [[10.0, 12.0, 8.0], [14.0, 16.0, 8.0]]

    def addOptionsWidget(self, widget):
        self.options.append(widget)

    def addLabeledOptionsWidget(self, label, widget):
        self.options.append((label, widget))

    def saveStateForUndo(self):
        self.undo_states += 1

    def xyToIjk(self, xy, viewWidget, image, parentTransformNode=None):
        return self.ijk[0] if xy == (100, 100) else self.ijk[1]

    def sourceVolumeImageData(self):
        return FakeImageData((28, 24, 20))


class FakeInteractor:
    def __init__(self, position, control=False):
        self.position, self.control = position, control

    def GetEventPosition(self):
        return self.position

    def GetControlKey(self):
        return self.control

    def GetShiftKey(self):
        return False


class FakeView:
    def __init__(self, name="qMRMLSliceWidget"):
        self.name = name

    def className(self):
        return self.name


class RecordingLogic:
    def __init__(self):
        self.calls = []

    def addPoint(self, *args, **kwargs):
        self.calls.append(("point", args, kwargs))

    def addBox(self, *args, **kwargs):
        self.calls.append(("box", args, kwargs))


def test_effect_turns_clicks_and_drags_into_prompts(slicer_env):
    effect_module = importlib.import_module("SegmentEditorBrainSAMLib.SegmentEditorEffect")
    vtk = importlib.import_module("vtk")
    scripted = FakeScriptedEffect()
    effect = effect_module.SegmentEditorEffect(scripted)
    assert scripted.name == "BrainSAM"
    effect.setupOptionsFrame()
    assert [item for item, _ in effect.structureComboBox.items][0] == "Left-Thalamus"
    volume = FakeVolumeNode(np.zeros((20, 24, 28), np.float32), np.eye(4))
    slicer_env.util.volumes[volume] = volume.array
    segmentation = FakeSegmentationNode()
    effect._nodes = lambda: (volume, segmentation)
    logic = RecordingLogic()
    effect._logic = logic
    effect.structureComboBox.setCurrentIndex(4)  # Left-Putamen, class 5

    # 3-D views are not handled.
    assert effect.processInteractionEvents(FakeInteractor((1, 1)), vtk.vtkCommand.LeftButtonPressEvent, FakeView("qMRMLThreeDWidget")) is False
    # Click -> positive point; Ctrl+click -> negative point; drag -> box.
    for end, control in (((100, 100), False), ((100, 100), True), ((160, 140), False)):
        assert effect.processInteractionEvents(FakeInteractor((100, 100)), vtk.vtkCommand.LeftButtonPressEvent, FakeView())
        assert effect.processInteractionEvents(FakeInteractor(end, control), vtk.vtkCommand.LeftButtonReleaseEvent, FakeView())
    assert slicer_env.util.errors == []
    kinds = [(kind, args[2]) for kind, args, _ in logic.calls]
    assert kinds == [("point", 5), ("point", 5), ("box", 5)]
    assert logic.calls[0][1][3:] == ([10.0, 12.0, 8.0], True)
    assert logic.calls[1][1][4] is False
    assert logic.calls[2][1][3:] == ([10.0, 12.0, 8.0], [14.0, 16.0, 8.0])
    for _, _, kwargs in logic.calls:
        assert kwargs["beforeWrite"] == scripted.saveStateForUndo
    assert slicer_env.util.errors == []

    # A click outside the volume is a message, not an exception.
    scripted.ijk[0] = [-40.0, 0.0, 0.0]
    effect.processInteractionEvents(FakeInteractor((100, 100)), vtk.vtkCommand.LeftButtonPressEvent, FakeView())
    effect.processInteractionEvents(FakeInteractor((100, 100)), vtk.vtkCommand.LeftButtonReleaseEvent, FakeView())
    assert len(logic.calls) == 3 and "outside" in slicer_env.util.errors[-1]


class FakeEngine:
    """Engine stand-in: records the thread it runs on and returns fixed labels."""

    def __init__(self, labels, fail=None):
        self.labels, self.fail, self.threads = labels, fail, []
        self.volume_keys = []

    def ensure_model(self, settings):
        self.threads.append(threading.get_ident())
        self.settings = settings

    def set_volume(self, key, array, ijk_to_ras):
        self.volume_keys.append((key, array is not None))

    def segment_all(self, progress):
        from BrainSAMLib.engine import SegmentationResult

        progress(1, 2)
        if self.fail:
            raise self.fail
        progress(2, 2)
        return SegmentationResult(self.labels, tuple(range(1, 13)), {c: (float(c), 0.5) for c in range(1, 13)})


def test_logic_segment_all_runs_on_the_worker_and_writes_on_the_main_thread(slicer_env):
    brainsam = importlib.import_module("BrainSAM")
    from BrainSAMLib.settings import ModelSettings

    logic = brainsam.BrainSAMLogic.shared()
    assert brainsam.BrainSAMLogic.shared() is logic
    logic.saveSettings(ModelSettings(checkpoint="/models/m.pt", adapter="", device="cpu"))
    labels = np.zeros((20, 24, 28), np.uint8)
    for class_id in range(1, 13):
        labels[class_id, 5:7, 3:5] = class_id
    engine = FakeEngine(labels)
    logic.engine = engine
    volume = FakeVolumeNode(np.ones((20, 24, 28), np.int16), np.diag([-1.0, -1.0, 1.0, 1.0]))
    slicer_env.util.volumes[volume] = volume.array
    segmentation = FakeSegmentationNode()
    progress, finished, undo = [], [], []

    for _ in range(2):
        logic.segmentAll(volume, segmentation, onProgress=lambda d, t: progress.append((d, t)),
                         onFinished=lambda r, m: finished.append((r, m)), beforeWrite=lambda: undo.append(1))
        logic.waitForIdle(timeoutSeconds=10)

    assert engine.threads[0] != threading.get_ident()
    assert engine.settings == ModelSettings("/models/m.pt", "", "cpu")
    # The voxels are sent once; the second job reuses the session's copy.
    assert [sent for _, sent in engine.volume_keys] == [True, False]
    assert progress[-1] == (2, 2) and len(undo) == 2
    assert [m for _, m in finished] == ["Segment all structures: done."] * 2
    written = slicer_env.util.written[-12:]
    names = {sid: segmentation.segmentation.segments[sid].name for _, sid, _, _ in written}
    assert len(names) == 12 and names["BrainSAM_Left_Thalamus"] == "Left-Thalamus"
    for _, segment_id, mask, reference in written:
        class_id = [k for k, v in names.items()].index(segment_id) + 1
        assert reference is volume and mask.dtype == np.uint8
        assert np.count_nonzero(mask) == 4 and mask[class_id, 5, 3] == 1
    assert segmentation.segmentation.segments["BrainSAM_Right_Amygdala"].colour == pytest.approx((103 / 255, 1.0, 1.0))
    assert segmentation.reference is volume
    assert "Left-Thalamus" in brainsam.BrainSAMLogic.statsText(finished[0][0].stats)


def test_logic_shows_library_errors_as_messages(slicer_env):
    brainsam = importlib.import_module("BrainSAM")
    from brainsam.binding import BrainSAMError

    logic = brainsam.BrainSAMLogic.shared()
    logic.engine = FakeEngine(None, fail=BrainSAMError(4, "checkpoint /m.pt is not a BrainSAM model"))
    volume = FakeVolumeNode(np.ones((4, 4, 4), np.float32), np.eye(4))
    slicer_env.util.volumes[volume] = volume.array
    finished = []
    logic.segmentAll(volume, FakeSegmentationNode(), onFinished=lambda r, m: finished.append((r, m)))
    logic.waitForIdle(timeoutSeconds=10)
    assert finished == [(None, "Segment all structures: failed.")]
    assert "not a BrainSAM model" in slicer_env.util.errors[-1]
    assert slicer_env.util.written == []
