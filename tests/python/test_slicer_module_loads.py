"""The Slicer module and Segment Editor effect, outside Slicer.

3D Slicer cannot be installed here, so these tests import BrainSAM.py,
SegmentEditorBrainSAM.py and SegmentEditorEffect.py with stand-ins for `slicer`, `qt`,
`ctk`, `vtk` and `SegmentEditorEffects` (tests/python/slicer_standins/). The stand-ins
model what the behaviour depends on: keyboard modifiers on clicks, slice-view
orientation (SliceToRAS), the Segment Editor's masking (editable area, overwrite other
segments) and undo, segment names and colours, a Qt timer. That the names used exist in
real Slicer is checked against Slicer's own API in test_slicer_api.py; BrainSAMTest runs
inside Slicer.
"""

import copy
import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).resolve().parent / "slicer_standins"
MODULE_DIRS = [REPO / "slicer-module" / "BrainSAM", REPO / "slicer-module" / "SegmentEditorBrainSAM"]
STANDIN_NAMES = ("slicer", "qt", "ctk", "vtk", "SegmentEditorEffects")
LOADED = ("BrainSAM", "SegmentEditorBrainSAM", "SegmentEditorBrainSAMLib", "BrainSAMLib")

# Voxel axes of the test volume: RAS-aligned (i -> R, j -> A, k -> S), so the coronal
# (slicing) axis is j; numpy arrays are [k, j, i].
SHAPE = (20, 24, 28)
CORONAL_VIEW = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 12.0], [0, 1.0, 0, 0], [0, 0, 0, 1]])  # normal A, at j = 12
AXIAL_VIEW = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 8.0], [0, 0, 0, 1]])  # normal S, at k = 8


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

    for recorded in (slicer.util.errors, slicer.util.written, slicer.util.status, slicer.util.confirmations,
                     slicer.util.pip_installs, slicer.util.confirm_answers):
        recorded.clear()
    slicer.util.volumes.clear()
    slicer.mrmlScene.Clear()
    qt.QSettings.store = {}
    qt.QTimer.active_timers = []
    yield slicer
    brainsam = sys.modules.get("BrainSAM")
    if brainsam is not None and brainsam.BrainSAMLogic._shared is not None:
        brainsam.BrainSAMLogic._shared.engine.close()
        brainsam.BrainSAMLogic._shared = None
    _forget(STANDIN_NAMES + LOADED)


# --- Slicer-side stand-ins for nodes ---------------------------------------------------


class FakeImageData:
    def __init__(self, dims):
        self.dims = dims

    def GetMTime(self):
        return 7

    def GetDimensions(self):
        return self.dims


class FakeVolumeNode:
    def __init__(self, array, ijk_to_ras):
        self.array, self.matrix = array, np.asarray(ijk_to_ras, dtype=float)

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
    def __init__(self, name, colour, shape):
        self.name, self.colour = name, tuple(colour)
        self.mask = np.zeros(shape, dtype=bool)

    def SetName(self, name):
        self.name = name

    def GetName(self):
        return self.name

    def SetColor(self, r, g, b):
        self.colour = (r, g, b)

    def GetColor(self):
        return self.colour


class FakeSegmentation:
    def __init__(self, shape):
        self.segments, self.shape = {}, shape

    def GetSegment(self, segment_id):
        return self.segments.get(segment_id)

    def AddEmptySegment(self, segment_id, name, colour):
        self.segments[segment_id] = FakeSegment(name, colour, self.shape)
        return segment_id


class FakeSegmentationNode:
    def __init__(self, shape=SHAPE):
        self.segmentation = FakeSegmentation(shape)
        self.display = None
        self.reference = None

    def GetSegmentation(self):
        return self.segmentation

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


class FakeParameterNode:
    """vtkMRMLSegmentEditorNode: selection, source volume, masking settings."""

    def __init__(self, segmentation_node, volume_node):
        self.segmentation_node, self.volume_node = segmentation_node, volume_node
        self.selected = ""
        self.mask_mode = "everywhere"  # or ("inside", segment id)
        self.overwrite = "all"  # or "none"

    def GetSegmentationNode(self):
        return self.segmentation_node

    def GetSourceVolumeNode(self):
        return self.volume_node

    def GetSelectedSegmentID(self):
        return self.selected

    def SetSelectedSegmentID(self, segment_id):
        self.selected = segment_id


class FakeScriptedEffect:
    """qSlicerSegmentEditorScriptedEffect, modelling how Slicer's modify*ByLabelmap
    applies a modifier: only inside the extent, only where the editable area allows,
    and (adding) taking the voxels from other segments when overwrite is on. Undo
    restores the snapshot taken by saveStateForUndo."""

    def __init__(self, parameter_node=None):
        self.parameter_node = parameter_node
        self.options = []
        self.undo_stack = []

    def parameterSetNode(self):
        return self.parameter_node

    def addOptionsWidget(self, widget):
        self.options.append(widget)

    def addLabeledOptionsWidget(self, label, widget):
        self.options.append((label, widget))

    def _segments(self):
        return self.parameter_node.segmentation_node.segmentation.segments

    def saveStateForUndo(self):
        self.undo_stack.append(copy.deepcopy({k: (s.mask, s.name, s.colour) for k, s in self._segments().items()}))

    def undo(self):
        state = self.undo_stack.pop()
        segments = self._segments()
        for key in list(segments):
            if key not in state:
                del segments[key]
        for key, (mask, name, colour) in state.items():
            if key not in segments:
                segments[key] = FakeSegment(name, colour, mask.shape)
            segments[key].mask, segments[key].name, segments[key].colour = mask, name, colour

    def _modifier(self, labelmap):
        volume = self.parameter_node.volume_node
        assert labelmap.dims == volume.array.shape[::-1], "modifier not in the volume's grid"
        assert np.allclose(labelmap.matrix, volume.matrix), "modifier not in the volume's geometry"
        modifier = labelmap.array().astype(bool)
        if self.parameter_node.mask_mode != "everywhere":
            _, inside = self.parameter_node.mask_mode
            modifier &= self._segments()[inside].mask
        return modifier

    def _apply(self, segment_id, modifier, mode):
        from slicer import qSlicerSegmentEditorAbstractEffect as modes

        segments = self._segments()
        target = segments[segment_id]
        if mode == modes.ModificationModeSet:
            target.mask = modifier.copy()
        elif mode == modes.ModificationModeAdd:
            target.mask = target.mask | modifier
        elif mode == modes.ModificationModeRemove:
            target.mask = target.mask & ~modifier
        if mode in (modes.ModificationModeSet, modes.ModificationModeAdd) and self.parameter_node.overwrite == "all":
            for key, other in segments.items():
                if key != segment_id:
                    other.mask = other.mask & ~modifier

    def modifySelectedSegmentByLabelmap(self, labelmap, mode, extent, bypassMasking=False):
        modifier = self._modifier(labelmap)
        region = np.zeros_like(modifier)
        i0, i1, j0, j1, k0, k1 = extent
        region[k0:k1 + 1, j0:j1 + 1, i0:i1 + 1] = True
        self._apply(self.parameter_node.selected, modifier & region, mode)

    def modifySegmentByLabelmap(self, segmentationNode, segmentId, labelmap, mode, bypassMasking=False):
        self._apply(segmentId, self._modifier(labelmap), mode)


class FakeInteractor:
    def __init__(self, position, control=False, shift=False, alt=False):
        self.position, self.control, self.shift, self.alt = position, control, shift, alt

    def GetEventPosition(self):
        return self.position

    def GetControlKey(self):
        return self.control

    def GetShiftKey(self):
        return self.shift

    def GetAltKey(self):
        return self.alt


class FakeSliceNode:
    def __init__(self, slice_to_ras):
        import vtk

        self.matrix = vtk.vtkMatrix4x4()
        self.matrix.DeepCopy(slice_to_ras)

    def GetSliceToRAS(self):
        return self.matrix


class FakeSliceWidget:
    def __init__(self, slice_to_ras=CORONAL_VIEW, name="qMRMLSliceWidget"):
        self.name = name
        self.slice_node = FakeSliceNode(slice_to_ras)

    def className(self):
        return self.name

    def mrmlSliceNode(self):
        return self.slice_node


class RecordingLogic:
    def __init__(self):
        self.calls = []
        self.problem = None

    def ijkToRas(self, volumeNode):
        return volumeNode.matrix

    def ensureReady(self, ask=True):
        return self.problem

    def missingDependency(self):
        return self.problem

    def addPoint(self, *args, **kwargs):
        self.calls.append(("point", args, kwargs))

    def addBox(self, *args, **kwargs):
        self.calls.append(("box", args, kwargs))

    def clearPrompts(self, *args, **kwargs):
        self.calls.append(("clear", args, kwargs))


def make_effect(slicer_env, logic=None):
    effect_module = importlib.import_module("SegmentEditorBrainSAMLib.SegmentEditorEffect")
    volume = FakeVolumeNode(np.zeros(SHAPE, np.float32), np.eye(4))
    slicer_env.util.volumes[volume] = volume.array
    segmentation = FakeSegmentationNode()
    scripted = FakeScriptedEffect(FakeParameterNode(segmentation, volume))
    effect = effect_module.SegmentEditorEffect(scripted)
    effect.setupOptionsFrame()
    effect._logic = logic if logic is not None else RecordingLogic()
    return effect, scripted, volume, segmentation


def click(effect, view, start, end=None, **keys):
    import vtk

    end = start if end is None else end
    taken = effect.processInteractionEvents(FakeInteractor(start, **keys), vtk.vtkCommand.LeftButtonPressEvent, view)
    if not taken:
        return False
    if end != start:
        assert effect.processInteractionEvents(FakeInteractor(end, **keys), vtk.vtkCommand.MouseMoveEvent, view)
    assert effect.processInteractionEvents(FakeInteractor(end, **keys), vtk.vtkCommand.LeftButtonReleaseEvent, view)
    return True


# --- loading and registration ------------------------------------------------------------


def test_module_files_load_without_the_brainsam_package_and_declare_what_slicer_expects(slicer_env, monkeypatch):
    # A fresh Slicer has no `brainsam` package: the module must still load (and offer to
    # install it), not fail at import.
    import importlib.abc

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "brainsam" or name.startswith("brainsam."):
                raise ImportError(f"No module named {name!r}")
            return None

    _forget(("brainsam",))
    monkeypatch.setattr(sys, "meta_path", [Block(), *sys.meta_path])
    brainsam = importlib.import_module("BrainSAM")
    importlib.import_module("SegmentEditorBrainSAMLib.SegmentEditorEffect")
    module = brainsam.BrainSAM(None)
    assert module.parent.title == "BrainSAM" and module.parent.categories == ["Segmentation"]
    assert module.parent.acknowledgementText and module.parent.contributors
    for name in ("BrainSAMWidget", "BrainSAMLogic", "BrainSAMTest"):
        assert hasattr(brainsam, name)
    problem = brainsam.BrainSAMLogic.shared().missingDependency()
    assert problem.installable and "'brainsam' is not installed" in problem.message
    icon = REPO / "slicer-module" / "BrainSAM" / "Resources" / "Icons" / "BrainSAM.png"
    assert icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hidden_effect_module_registers_at_startup(slicer_env):
    registering = importlib.import_module("SegmentEditorBrainSAM")
    module = registering.SegmentEditorBrainSAM(None)
    assert module.parent.hidden is True and module.parent.acknowledgementText
    assert ("startupCompleted()", module.registerEditorEffect) in slicer_env.app.connections


# --- interaction --------------------------------------------------------------------------


def test_clicks_and_drags_become_prompts_and_markups(slicer_env):
    effect, scripted, volume, _ = make_effect(slicer_env)
    logic = effect._logic
    effect.structureComboBox.setCurrentIndex(4)  # Left-Putamen, class 5
    view = FakeSliceWidget(CORONAL_VIEW)
    assert click(effect, view, (10, 8))  # RAS (10, 12, 8) -> ijk (10, 12, 8)
    assert click(effect, view, (11, 9), control=True)
    assert click(effect, view, (4, 3), (16, 14))
    kinds = [(kind, args[1]) for kind, args, _ in logic.calls]
    assert kinds == [("point", 5), ("point", 5), ("box", 5)]
    assert logic.calls[0][1][2] == pytest.approx([10, 12, 8]) and logic.calls[0][1][3] is True
    assert logic.calls[1][1][3] is False
    assert logic.calls[2][1][2] == pytest.approx([4, 12, 3]) and logic.calls[2][1][3] == pytest.approx([16, 12, 14])
    # The prompts are shown: a green + and a red - point, and the box.
    positive = slicer_env.mrmlScene.GetFirstNodeByName("BrainSAM positive points")
    negative = slicer_env.mrmlScene.GetFirstNodeByName("BrainSAM negative points")
    assert [p[1] for p in positive.points] == ["Left-Putamen +"] and positive.locked
    assert [p[1] for p in negative.points] == ["Left-Putamen -"]
    assert positive.display.colour[1] > 0.5 and negative.display.colour[0] > 0.5
    box = slicer_env.mrmlScene.GetFirstNodeByName("BrainSAM box")
    assert box.center == pytest.approx((10, 12, 8.5)) and box.size == pytest.approx((13, 1, 12))
    # Clear prompts removes this structure's markups.
    effect.onClearPrompts()
    assert positive.points == [] and negative.points == []
    assert slicer_env.mrmlScene.GetFirstNodeByName("BrainSAM box") is None
    assert slicer_env.util.errors == []


def test_the_box_is_drawn_while_dragging(slicer_env):
    import vtk

    effect, *_ = make_effect(slicer_env)
    view = FakeSliceWidget(CORONAL_VIEW)
    assert effect.processInteractionEvents(FakeInteractor((4, 3)), vtk.vtkCommand.LeftButtonPressEvent, view)
    assert effect.processInteractionEvents(FakeInteractor((12, 9)), vtk.vtkCommand.MouseMoveEvent, view)
    box = slicer_env.mrmlScene.GetFirstNodeByName("BrainSAM box")
    assert box is not None and box.size == pytest.approx((9, 1, 7))
    assert effect.processInteractionEvents(FakeInteractor((16, 14)), vtk.vtkCommand.MouseMoveEvent, view)
    assert box.size == pytest.approx((13, 1, 12))


def test_modified_clicks_and_other_views_pass_through_to_slicer(slicer_env):
    import vtk

    effect, *_ = make_effect(slicer_env)
    logic = effect._logic
    view = FakeSliceWidget(CORONAL_VIEW)
    # Shift-drag pans, Ctrl+Alt-drag rotates, Alt...: Slicer's, not taken.
    for keys in ({"shift": True}, {"control": True, "alt": True}, {"alt": True}, {"control": True, "shift": True}):
        assert click(effect, view, (4, 3), (16, 14), **keys) is False, keys
        # Slicer then gets the move and release too.
        assert effect.processInteractionEvents(FakeInteractor((16, 14)), vtk.vtkCommand.MouseMoveEvent, view) is False
        assert effect.processInteractionEvents(FakeInteractor((16, 14)), vtk.vtkCommand.LeftButtonReleaseEvent, view) is False
    assert effect.processInteractionEvents(FakeInteractor((1, 1)), vtk.vtkCommand.LeftButtonPressEvent,
                                           FakeSliceWidget(name="qMRMLThreeDWidget")) is False
    assert logic.calls == []


def test_points_work_in_any_view_but_boxes_only_in_the_coronal_view(slicer_env):
    effect, _, _, _ = make_effect(slicer_env)
    logic = effect._logic
    axial = FakeSliceWidget(AXIAL_VIEW)
    assert click(effect, axial, (10, 15))  # RAS (10, 15, 8)
    assert logic.calls[0][0] == "point" and logic.calls[0][1][2] == pytest.approx([10, 15, 8])
    assert click(effect, axial, (4, 3), (16, 14))  # a drag in the axial view
    assert len(logic.calls) == 1, "a box outside the coronal view must not reach the library"
    assert "coronal view" in slicer_env.util.status[-1] and "coronal view" in effect.statusLabel.text
    assert slicer_env.mrmlScene.GetFirstNodeByName("BrainSAM box") is None
    assert slicer_env.util.errors == []  # a hint, not a dialog


def test_a_click_outside_the_volume_is_a_status_bar_hint(slicer_env):
    effect, *_ = make_effect(slicer_env)
    assert click(effect, FakeSliceWidget(CORONAL_VIEW), (-40, 3))
    assert effect._logic.calls == [] and slicer_env.util.errors == []
    assert "outside the source volume" in slicer_env.util.status[-1]


def test_a_click_without_the_runtime_names_what_is_missing(slicer_env):
    from BrainSAMLib.install import Problem

    effect, *_ = make_effect(slicer_env)
    effect._logic.problem = Problem("The BrainSAM Python package 'brainsam' is not installed", installable=True)
    assert click(effect, FakeSliceWidget(CORONAL_VIEW), (10, 8))
    assert effect._logic.calls == [] and slicer_env.util.errors == []
    assert "'brainsam' is not installed" in slicer_env.util.status[-1]


def test_selecting_a_segment_switches_the_structure_and_back(slicer_env):
    effect, scripted, _, segmentation = make_effect(slicer_env)
    brainsam = importlib.import_module("BrainSAM")
    for class_id in (3, 10):
        brainsam.BrainSAMLogic.ensureSegment(segmentation, class_id)
    scripted.parameter_node.SetSelectedSegmentID("BrainSAM_Right_Hippocampus")
    effect.updateGUIFromMRML()  # Slicer calls this when the selection changes
    assert effect.selectedStructure() == 10
    scripted.parameter_node.SetSelectedSegmentID("Segment_1")  # not a BrainSAM segment: unchanged
    effect.updateGUIFromMRML()
    assert effect.selectedStructure() == 10
    effect.structureComboBox.setCurrentIndex(2)  # Left-Caudate: its segment gets selected
    assert scripted.parameter_node.GetSelectedSegmentID() == "BrainSAM_Left_Caudate"


# --- writing results ----------------------------------------------------------------------


def result_for(labels, structure, slices, axis=1):
    from BrainSAMLib.engine import SegmentationResult

    return SegmentationResult(labels, (structure,), slices=tuple(slices), axis=axis)


def test_a_prompt_changes_only_its_slice_keeps_edits_names_colours_and_undoes_exactly(slicer_env):
    effect, scripted, volume, segmentation = make_effect(slicer_env)
    brainsam = importlib.import_module("BrainSAM")
    segment_id = brainsam.BrainSAMLogic.ensureSegment(segmentation, 5)
    segment = segmentation.segmentation.segments[segment_id]
    segment.SetName("my putamen")
    segment.SetColor(0.1, 0.2, 0.3)
    segment.mask[:, 5, 3:8] = True  # the user's paint on slice 5
    segment.mask[:, 12, 0:4] = True  # and on the prompted slice, where the result differs
    before = segment.mask.copy()
    scripted.parameter_node.SetSelectedSegmentID(segment_id)
    labels = np.zeros(SHAPE, np.uint8)
    labels[:, 12, 10:15] = 5  # the library's result on slice 12
    labels[:, 5, :] = 5  # stale library labels elsewhere must not be written
    effect.writeSlices(result_for(labels, 5, [12]), volume, segmentation, segment_id)
    assert segment.mask[:, 12, 10:15].all()
    assert not segment.mask[:, 12, 0:4].any(), "the slice is replaced by the result"
    np.testing.assert_array_equal(segment.mask[:, 5, :], before[:, 5, :])
    changed = np.nonzero((segment.mask != before).any(axis=(0, 2)))[0]
    assert changed.tolist() == [12]
    assert segment.name == "my putamen" and segment.colour == (0.1, 0.2, 0.3)
    scripted.undo()
    np.testing.assert_array_equal(segment.mask, before)
    assert scripted.undo_stack == []  # one prompt, one undo step


def test_writing_honours_the_editable_area_and_overwrite_settings(slicer_env):
    effect, scripted, volume, segmentation = make_effect(slicer_env)
    brainsam = importlib.import_module("BrainSAM")
    target = brainsam.BrainSAMLogic.ensureSegment(segmentation, 5)
    other = brainsam.BrainSAMLogic.ensureSegment(segmentation, 7)
    segments = segmentation.segmentation.segments
    segments[other].mask[:, 12, 12:14] = True
    labels = np.zeros(SHAPE, np.uint8)
    labels[:, 12, 10:15] = 5
    scripted.parameter_node.overwrite = "none"
    effect.writeSlices(result_for(labels, 5, [12]), volume, segmentation, target)
    assert segments[other].mask[:, 12, 12:14].all(), "overwrite off: the other segment keeps its voxels"
    scripted.undo()
    scripted.parameter_node.overwrite = "all"
    effect.writeSlices(result_for(labels, 5, [12]), volume, segmentation, target)
    assert not segments[other].mask[:, 12, 12:14].any(), "overwrite on: the voxels move to the target"
    scripted.undo()
    # Editable area "inside Segment_1": nothing outside it changes.
    allowed = segmentation.segmentation.AddEmptySegment("Segment_1", "Segment_1", (1, 1, 1))
    segments[allowed].mask[:, 12, 10:12] = True
    scripted.parameter_node.mask_mode = ("inside", allowed)
    effect.writeSlices(result_for(labels, 5, [12]), volume, segmentation, target)
    assert segments[target].mask[:, 12, 10:12].all() and not segments[target].mask[:, 12, 12:15].any()


def test_a_prompt_writes_into_the_selected_segment_or_creates_the_structure_segment(slicer_env):
    effect, scripted, volume, segmentation = make_effect(slicer_env)
    segments = segmentation.segmentation.segments
    # Nothing selected: the structure's segment is created with its FreeSurfer name/colour.
    apply = effect._applier(volume, segmentation, 9)
    labels = np.zeros(SHAPE, np.uint8)
    labels[:, 12, 3:6] = 9
    apply(result_for(labels, 9, [12]))
    assert segments["BrainSAM_Left_Hippocampus"].name == "Left-Hippocampus"
    assert segments["BrainSAM_Left_Hippocampus"].mask[:, 12, 3:6].all()
    scripted.undo()  # undo removes the segment the prompt created, too
    assert "BrainSAM_Left_Hippocampus" not in segments
    apply(result_for(labels, 9, [12]))
    # The user's own segment selected: the prompt merges into it.
    segmentation.segmentation.AddEmptySegment("Segment_1", "my structure", (1, 0, 0))
    scripted.parameter_node.SetSelectedSegmentID("Segment_1")
    effect._applier(volume, segmentation, 9)(result_for(labels, 9, [12]))
    assert segments["Segment_1"].mask[:, 12, 3:6].all()


# --- settings in the module -----------------------------------------------------------------


def test_logic_settings_persist(slicer_env):
    brainsam = importlib.import_module("BrainSAM")
    from BrainSAMLib.settings import InstallSettings, ModelSettings

    logic = brainsam.BrainSAMLogic.shared()
    chosen = ModelSettings("", "", "cuda:1", "fp16", mirror_views=False, shift_views=False, orientation_views=False)
    logic.saveSettings(chosen)
    logic.saveInstallSettings(InstallSettings("/opt/libbrainsam.so", "brainsam==0.3"))
    brainsam.BrainSAMLogic._shared = None
    again = brainsam.BrainSAMLogic.shared()
    assert again.settings() == chosen
    assert again.installSettings() == InstallSettings("/opt/libbrainsam.so", "brainsam==0.3")
    problem = again.missingDependency()
    assert problem is not None and "/opt/libbrainsam.so" in problem.message


# --- end to end with the real library ---------------------------------------------------------


@pytest.fixture
def real_model():
    checkpoint = os.environ.get("BRAINSAM_TEST_CHECKPOINT")
    library = os.environ.get("BRAINSAM_LIBRARY")
    if not checkpoint or not library:
        pytest.skip("skipped: BRAINSAM_TEST_CHECKPOINT and BRAINSAM_LIBRARY (set by scripts/test) not set")
    return checkpoint, library


def test_a_click_runs_the_library_and_changes_only_the_slice_through_it(slicer_env, real_model):
    checkpoint, library = real_model
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_binding_session import ijk_to_ras, synthetic_volume
    import qt

    brainsam = importlib.import_module("BrainSAM")
    from BrainSAMLib.settings import InstallSettings, ModelSettings

    logic = brainsam.BrainSAMLogic.shared()
    logic.saveSettings(ModelSettings(checkpoint=checkpoint, device="cpu", mirror_views=False, shift_views=False))
    logic.saveInstallSettings(InstallSettings(library=library))
    effect, scripted, _, segmentation = make_effect(slicer_env, logic=logic)
    array = synthetic_volume()
    matrix = ijk_to_ras(direction=np.eye(3))
    volume = FakeVolumeNode(array, matrix)
    slicer_env.util.volumes[volume] = array
    scripted.parameter_node.volume_node = volume
    segmentation.segmentation.shape = array.shape
    segment_id = brainsam.BrainSAMLogic.ensureSegment(segmentation, 5)
    paint = segmentation.segmentation.segments[segment_id]
    paint.mask[:, 3, :] = True  # the user's edit on coronal slice 3
    scripted.parameter_node.SetSelectedSegmentID(segment_id)
    before = paint.mask.copy()
    # A coronal view through voxel j = 24, one pixel = one mm.
    centre = matrix @ np.array([20.0, 24.0, 22.0, 1.0])
    view = np.array([[1.0, 0, 0, centre[0]], [0, 0, 1.0, centre[1]], [0, 1.0, 0, centre[2]], [0, 0, 0, 1]])
    assert click(effect, FakeSliceWidget(view), (0, 0))
    assert qt.QTimer.active_timers, "the logic polls its job from a timer"
    logic.waitForIdle(timeoutSeconds=120)
    assert slicer_env.util.errors == [] and "failed" not in effect.statusLabel.text, effect.statusLabel.text
    assert effect.statusLabel.text.startswith("Add point: done.")
    changed = np.nonzero((paint.mask != before).any(axis=(0, 2)))[0]
    assert set(changed.tolist()) <= {24}
    assert paint.mask[:, 3, :].all(), "the edit on another slice is kept"
    assert not qt.QTimer.active_timers, "the timer stops when idle"
