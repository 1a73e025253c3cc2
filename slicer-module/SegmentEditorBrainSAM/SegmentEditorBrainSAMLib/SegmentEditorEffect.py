"""Segment Editor effect "BrainSAM": prompts for one structure at a time.

In a slice view: click = positive point, Ctrl+click = negative point (in any view: the
coronal slice through the point is re-segmented), drag = box (coronal view only). Every
other modified click (Shift pan, Ctrl+Alt rotate, ...) goes to Slicer. A prompt changes
only the slices it touched, merged into the selected segment through the Segment
Editor's masking (editable area, overwrite), as one undo step. Prompts are shown as
markups. Thin: the work is in BrainSAMLogic; long parts are library jobs polled by a
Qt timer.
"""

import os

import numpy as np
import qt
import slicer
import vtk
import vtk.util.numpy_support
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from BrainSAMLib import geometry
from BrainSAMLib.structures import STRUCTURES, structure, structure_for_segment_id

#: A press and release further apart than this (pixels) is a box drag, not a click.
DRAG_PIXELS = 5
#: Names of the markups nodes that show the prompts.
POSITIVE_NODE_NAME = "BrainSAM positive points"
NEGATIVE_NODE_NAME = "BrainSAM negative points"
BOX_NODE_NAME = "BrainSAM box"


class _Press:
    """A left press the effect took: where, in which view, and whether negative."""

    def __init__(self, xy, viewWidget, negative):
        self.xy = xy
        self.viewWidget = viewWidget
        self.negative = negative
        self.end = xy

    def dragged(self):
        return max(abs(self.end[0] - self.xy[0]), abs(self.end[1] - self.xy[1])) >= DRAG_PIXELS


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    """The BrainSAM effect."""

    def __init__(self, scriptedEffect):
        scriptedEffect.name = "BrainSAM"
        scriptedEffect.perSegment = False
        scriptedEffect.requireSegments = False
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self._press = None
        self._lastSlice = {}  # structure id -> slice of its last prompt
        self._logic = None
        self._syncing = False

    def clone(self):
        import qSlicerSegmentationsEditorEffectsPythonQt as effects

        clonedEffect = effects.qSlicerSegmentEditorScriptedEffect(None)
        clonedEffect.setPythonSource(__file__.replace("\\", "/"))
        return clonedEffect

    def icon(self):
        iconPath = os.path.join(os.path.dirname(__file__), "SegmentEditorEffect.png")
        return qt.QIcon(iconPath) if os.path.exists(iconPath) else qt.QIcon()

    def helpText(self):
        return (
            "<html>BrainSAM (SAM + LoRA) for 12 subcortical structures.<p>"
            "Select a structure (or one of its segments), then in a slice view: "
            "<b>click</b> inside it: positive point; <b>Ctrl+click</b> outside it: negative "
            "point (any view: the coronal slice through the point is re-segmented); "
            "<b>drag</b> in the coronal view: box. Shift-drag (pan), Ctrl+Alt-drag (rotate) "
            "and the other modified clicks work as usual. Only the prompted slice changes, "
            "merged into the selected segment with the editor's masking settings; Undo "
            "removes exactly that change. <b>Propagate</b> carries the structure to "
            "neighbouring slices. <b>Segment all</b> creates the 12 segments automatically."
            "</html>"
        )

    @property
    def logic(self):
        if self._logic is None:
            from BrainSAM import BrainSAMLogic

            self._logic = BrainSAMLogic.shared()
        return self._logic

    # -- options panel ---------------------------------------------------------------------

    def setupOptionsFrame(self):
        self.structureComboBox = qt.QComboBox()
        for info in STRUCTURES:
            self.structureComboBox.addItem(info.name, info.class_id)
        self.structureComboBox.connect("currentIndexChanged(int)", self.onStructureChanged)
        self.scriptedEffect.addLabeledOptionsWidget("Structure:", self.structureComboBox)

        self.segmentAllButton = qt.QPushButton("Segment all structures")
        self.segmentAllButton.toolTip = "Create or update the 12 segments automatically."
        self.segmentAllButton.connect("clicked()", self.onSegmentAll)
        self.scriptedEffect.addOptionsWidget(self.segmentAllButton)

        self.directionComboBox = qt.QComboBox()
        for direction in ("both", "forward", "backward"):
            self.directionComboBox.addItem(direction)
        self.maxSlicesSpinBox = qt.QSpinBox()
        self.maxSlicesSpinBox.minimum = 1
        self.maxSlicesSpinBox.maximum = 1000
        self.maxSlicesSpinBox.value = 40
        self.maxSlicesSpinBox.toolTip = "At most this many slices in each direction."
        self.propagateButton = qt.QPushButton("Propagate")
        self.propagateButton.toolTip = (
            "From the slice of the last prompt, re-segment neighbouring slices one by one, each "
            "with a box from the previous slice's mask, until the structure ends."
        )
        self.propagateButton.connect("clicked()", self.onPropagate)
        propagateLayout = qt.QHBoxLayout()
        propagateLayout.addWidget(self.directionComboBox)
        propagateLayout.addWidget(self.maxSlicesSpinBox)
        propagateLayout.addWidget(self.propagateButton)
        self.scriptedEffect.addLabeledOptionsWidget("Propagate:", propagateLayout)

        self.clearPromptsButton = qt.QPushButton("Clear prompts")
        self.clearPromptsButton.toolTip = "Forget this structure's prompts and their markups (the segment is kept)."
        self.clearPromptsButton.connect("clicked()", self.onClearPrompts)
        self.cancelButton = qt.QPushButton("Cancel")
        self.cancelButton.connect("clicked()", self.onCancel)
        buttons = qt.QHBoxLayout()
        buttons.addWidget(self.clearPromptsButton)
        buttons.addWidget(self.cancelButton)
        self.scriptedEffect.addOptionsWidget(buttons)

        self.progressBar = qt.QProgressBar()
        self.progressBar.value = 0
        self.scriptedEffect.addOptionsWidget(self.progressBar)
        self.statusLabel = qt.QLabel("Click in a slice view to add a prompt.")
        self.statusLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.statusLabel)

    def activate(self):
        self._syncStructureToSelectedSegment()
        problem = self.logic.ensureReady(ask=True)
        if problem is not None:
            self.statusLabel.text = problem.message

    def deactivate(self):
        self._press = None
        self._removeBoxPreview()

    def updateGUIFromMRML(self):
        # Called by the Segment Editor when its parameter node changes, e.g. another
        # segment was selected: the structure follows the selected segment.
        self._syncStructureToSelectedSegment()

    def _syncStructureToSelectedSegment(self):
        parameterNode = self.scriptedEffect.parameterSetNode()
        if parameterNode is None:
            return
        info = structure_for_segment_id(parameterNode.GetSelectedSegmentID() or "")
        if info is not None and self.selectedStructure() != info.class_id:
            self._syncing = True
            try:
                self.structureComboBox.setCurrentIndex(info.class_id - 1)
            finally:
                self._syncing = False

    def onStructureChanged(self, index):
        """A structure picked in the list selects its segment, when there is one."""
        if self._syncing:
            return
        parameterNode = self.scriptedEffect.parameterSetNode()
        segmentationNode = parameterNode.GetSegmentationNode() if parameterNode else None
        if segmentationNode is None:
            return
        info = structure(int(index) + 1)
        if segmentationNode.GetSegmentation().GetSegment(info.segment_id) is not None:
            parameterNode.SetSelectedSegmentID(info.segment_id)

    # -- helpers ---------------------------------------------------------------------------

    def selectedStructure(self):
        return int(self.structureComboBox.currentIndex) + 1

    def _nodes(self):
        parameterNode = self.scriptedEffect.parameterSetNode()
        segmentationNode = parameterNode.GetSegmentationNode() if parameterNode else None
        volumeNode = parameterNode.GetSourceVolumeNode() if parameterNode else None
        if volumeNode is None or segmentationNode is None:
            raise ValueError("select a segmentation and a source volume in the Segment Editor first")
        return volumeNode, segmentationNode

    def _hint(self, message):
        """A non-modal hint: status bar and the effect's status line."""
        slicer.util.showStatusMessage(f"BrainSAM: {message}", 5000)
        self.statusLabel.text = message

    def _onProgress(self, done, total):
        self.progressBar.maximum = max(total, 1)
        self.progressBar.value = done

    def _onFinished(self, result, message):
        self.statusLabel.text = message
        if result is not None and result.slices:
            shown = ", ".join(str(s) for s in result.slices[:12])
            self.statusLabel.text = f"{message} Slices: {shown}"

    def _targetSegment(self, segmentationNode, structureId):
        """The segment a prompt for `structureId` writes into: the selected segment,
        unless it is another structure's BrainSAM segment or none is selected; then the
        structure's own segment (writeSlices creates it, with its name and colour, if
        missing)."""
        parameterNode = self.scriptedEffect.parameterSetNode()
        selected = parameterNode.GetSelectedSegmentID() or ""
        segment = segmentationNode.GetSegmentation().GetSegment(selected) if selected else None
        info = structure_for_segment_id(selected)
        if segment is not None and (info is None or info.class_id == structureId):
            return selected
        return structure(structureId).segment_id

    # -- interaction -----------------------------------------------------------------------

    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        if viewWidget.className() != "qMRMLSliceWidget":
            return False
        if eventId == vtk.vtkCommand.LeftButtonPressEvent:
            # Shift (pan), Alt, Ctrl+Alt (rotate), Ctrl+Shift...: Slicer's, not ours. Only
            # Ctrl alone is ours (negative point).
            if callerInteractor.GetShiftKey() or callerInteractor.GetAltKey():
                return False
            self._press = _Press(
                tuple(callerInteractor.GetEventPosition()), viewWidget, bool(callerInteractor.GetControlKey())
            )
            return True
        press = self._press
        if press is None or press.viewWidget is not viewWidget:
            return False
        if eventId == vtk.vtkCommand.MouseMoveEvent:
            press.end = tuple(callerInteractor.GetEventPosition())
            if press.dragged() and not press.negative:
                self._run(lambda: self._previewBox(press))
            return True
        if eventId == vtk.vtkCommand.LeftButtonReleaseEvent:
            self._press = None
            press.end = tuple(callerInteractor.GetEventPosition())
            self._run(lambda: self._prompt(press))
            return True
        return False

    def _run(self, action):
        """Run a UI action; a problem is a status-bar hint, never an exception into Qt."""
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - shown, never a crash
            self._hint(str(error))
            return None

    def _viewGeometry(self, press):
        volumeNode, segmentationNode = self._nodes()
        ijkToRas = self.logic.ijkToRas(volumeNode)
        return volumeNode, segmentationNode, ijkToRas

    def _toIjk(self, xy, viewWidget, ijkToRas):
        return [float(c) for c in geometry.ras_to_ijk(self.xyToRas(xy, viewWidget), ijkToRas)]

    def _volumeShape(self, volumeNode):
        i, j, k = volumeNode.GetImageData().GetDimensions()
        return (k, j, i)

    def _boxInCoronalView(self, press, ijkToRas):
        sliceToRas = slicer.util.arrayFromVTKMatrix(press.viewWidget.mrmlSliceNode().GetSliceToRAS())
        return geometry.view_along_axis(sliceToRas, ijkToRas, geometry.coronal_axis(ijkToRas))

    def _boxCorners(self, press, ijkToRas, shape):
        a = self._toIjk(press.xy, press.viewWidget, ijkToRas)
        b = self._toIjk(press.end, press.viewWidget, ijkToRas)
        dims = (shape[2], shape[1], shape[0])
        b = [min(max(c, 0.0), n - 1.0) for c, n in zip(b, dims)]  # a drag may leave the volume
        return a, b

    def _prompt(self, press):
        volumeNode, segmentationNode, ijkToRas = self._viewGeometry(press)
        shape = self._volumeShape(volumeNode)
        ijkStart = self._toIjk(press.xy, press.viewWidget, ijkToRas)
        if not geometry.inside(ijkStart, shape):
            self._removeBoxPreview()
            self._hint("the click is outside the source volume: click inside the brain")
            return
        problem = self.logic.missingDependency()
        if problem is not None:
            self._removeBoxPreview()
            self._hint(problem.message)
            return
        structureId = self.selectedStructure()
        if press.dragged():
            if press.negative:
                self._hint("Ctrl+drag is not a prompt: Ctrl+click adds a negative point, a plain drag a box")
                return
            if not self._boxInCoronalView(press, ijkToRas):
                self._removeBoxPreview()
                self._hint("boxes are drawn in the coronal view (points work in every view)")
                return
            a, b = self._boxCorners(press, ijkToRas, shape)
            self._showBox(a, b, ijkToRas)
            self.statusLabel.text = "Segmenting the box..."
            self.logic.addBox(volumeNode, structureId, a, b,
                              apply=self._applier(volumeNode, segmentationNode, structureId),
                              onFinished=self._finisher(structureId))
        else:
            self._addPointMarkup(structureId, ijkStart, ijkToRas, not press.negative)
            self.statusLabel.text = "Segmenting with the point..."
            self.logic.addPoint(volumeNode, structureId, ijkStart, not press.negative,
                                apply=self._applier(volumeNode, segmentationNode, structureId),
                                onFinished=self._finisher(structureId))

    def _finisher(self, structureId):
        def finished(result, message):
            if result is not None and result.slices:
                self._lastSlice[structureId] = result.slices[0]  # propagation starts here
            self._onFinished(result, message)

        return finished

    # -- writing ---------------------------------------------------------------------------

    def _applier(self, volumeNode, segmentationNode, structureId):
        segmentId = self._targetSegment(segmentationNode, structureId)

        def apply(result):
            self.writeSlices(result, volumeNode, segmentationNode, segmentId)

        return apply

    @staticmethod
    def labelmapFromArray(array, volumeNode):
        """A vtkOrientedImageData in the volume's geometry holding `array` ([k, j, i])."""
        image = slicer.vtkOrientedImageData()
        k, j, i = array.shape
        image.SetDimensions(i, j, k)
        matrix = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(matrix)
        image.SetImageToWorldMatrix(matrix)
        scalars = vtk.util.numpy_support.numpy_to_vtk(
            np.ascontiguousarray(array, dtype=np.uint8).ravel(), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR
        )
        image.GetPointData().SetScalars(scalars)
        return image

    def writeSlices(self, result, volumeNode, segmentationNode, segmentId):
        """Merge the result's slices into segment `segmentId` through the Segment Editor
        (its masking: editable area, intensity range, overwrite of other segments), as
        one undo step; voxels on other slices, and the segment's name and colour, are
        left alone."""
        classId = result.structures[0]
        slices = result.slices
        if not slices:
            return
        newMask = geometry.structure_on_slices(result.labels, classId, result.axis, slices)
        onSlices = geometry.structure_on_slices(np.ones_like(result.labels), 1, result.axis, slices)
        extent = geometry.slices_extent(result.labels.shape, result.axis, slices)
        parameterNode = self.scriptedEffect.parameterSetNode()
        self.scriptedEffect.saveStateForUndo()
        if segmentationNode.GetSegmentation().GetSegment(segmentId) is None:
            # Created after the undo snapshot: undo removes it again.
            from BrainSAM import BrainSAMLogic

            segmentId = BrainSAMLogic.ensureSegment(segmentationNode, classId)
        if parameterNode.GetSelectedSegmentID() != segmentId:
            parameterNode.SetSelectedSegmentID(segmentId)
        effects = slicer.qSlicerSegmentEditorAbstractEffect
        remove = self.labelmapFromArray(onSlices & (1 - newMask), volumeNode)
        self.scriptedEffect.modifySelectedSegmentByLabelmap(remove, effects.ModificationModeRemove, extent)
        add = self.labelmapFromArray(newMask, volumeNode)
        self.scriptedEffect.modifySelectedSegmentByLabelmap(add, effects.ModificationModeAdd, extent)

    def writeAll(self, result, volumeNode, segmentationNode):
        """Automatic result into the 12 BrainSAM segments through the Segment Editor's
        masking, as one undo step (names and colours of existing segments are kept)."""
        from BrainSAM import BrainSAMLogic

        self.scriptedEffect.saveStateForUndo()
        effects = slicer.qSlicerSegmentEditorAbstractEffect
        for classId in result.structures:
            segmentId = BrainSAMLogic.ensureSegment(segmentationNode, classId)
            labelmap = self.labelmapFromArray((result.labels == classId).astype(np.uint8), volumeNode)
            self.scriptedEffect.modifySegmentByLabelmap(
                segmentationNode, segmentId, labelmap, effects.ModificationModeSet
            )

    # -- prompt markups --------------------------------------------------------------------

    def _markupsNode(self, className, name, colour):
        node = slicer.mrmlScene.GetFirstNodeByName(name)
        if node is None:
            node = slicer.mrmlScene.AddNewNodeByClass(className, name)
            node.CreateDefaultDisplayNodes()
            display = node.GetDisplayNode()
            display.SetSelectedColor(*colour)
            display.SetColor(*colour)
            node.SetLocked(True)  # shown, not picked: clicks stay prompts
        return node

    def _addPointMarkup(self, structureId, ijk, ijkToRas, positive):
        name = POSITIVE_NODE_NAME if positive else NEGATIVE_NODE_NAME
        colour = (0.1, 0.9, 0.1) if positive else (0.95, 0.1, 0.1)
        node = self._markupsNode("vtkMRMLMarkupsFiducialNode", name, colour)
        ras = geometry.ijk_to_ras(ijk, ijkToRas)
        index = node.AddControlPoint(vtk.vtkVector3d(*ras))
        node.SetNthControlPointLabel(index, f"{structure(structureId).name} {'+' if positive else '-'}")
        node.SetNthControlPointDescription(index, str(structureId))

    def _removePointMarkups(self, structureId):
        for name in (POSITIVE_NODE_NAME, NEGATIVE_NODE_NAME):
            node = slicer.mrmlScene.GetFirstNodeByName(name)
            if node is None:
                continue
            for index in reversed(range(node.GetNumberOfControlPoints())):
                if node.GetNthControlPointDescription(index) == str(structureId):
                    node.RemoveNthControlPoint(index)

    def _showBox(self, ijkA, ijkB, ijkToRas):
        """The box prompt as a markups ROI aligned with the volume's voxel axes."""
        node = self._markupsNode("vtkMRMLMarkupsROINode", BOX_NODE_NAME, (1.0, 0.85, 0.0))
        matrix = np.asarray(ijkToRas, dtype=np.float64)
        spacing = np.linalg.norm(matrix[:3, :3], axis=0)
        orientation = np.eye(4)
        orientation[:3, :3] = matrix[:3, :3] / np.where(spacing > 0, spacing, 1.0)
        node.SetAndObserveObjectToNodeMatrix(slicer.util.vtkMatrixFromArray(orientation))
        node.SetCenter(*geometry.ijk_to_ras((np.asarray(ijkA) + np.asarray(ijkB)) / 2.0, ijkToRas))
        size = (np.abs(np.asarray(ijkB) - np.asarray(ijkA)) + 1.0) * spacing
        node.SetSize(*size)

    def _previewBox(self, press):
        volumeNode, _, ijkToRas = self._viewGeometry(press)
        if not self._boxInCoronalView(press, ijkToRas):
            return  # refused with a hint on release
        a, b = self._boxCorners(press, ijkToRas, self._volumeShape(volumeNode))
        axis = geometry.coronal_axis(ijkToRas)
        a, b = geometry.box_on_slice(a, b, axis)
        self._showBox(a, b, ijkToRas)

    def _removeBoxPreview(self):
        node = slicer.mrmlScene.GetFirstNodeByName(BOX_NODE_NAME)
        if node is not None:
            slicer.mrmlScene.RemoveNode(node)

    # -- buttons ---------------------------------------------------------------------------

    def onSegmentAll(self):
        def start():
            volumeNode, segmentationNode = self._nodes()
            problem = self.logic.ensureReady(ask=True)
            if problem is not None:
                raise ValueError(problem.message)
            self.statusLabel.text = "Segmenting all structures..."
            self.logic.segmentAll(
                volumeNode, segmentationNode, onProgress=self._onProgress, onFinished=self._onFinished,
                apply=lambda result: self.writeAll(result, volumeNode, segmentationNode),
            )

        self._run(start)

    def onPropagate(self):
        def start():
            volumeNode, segmentationNode = self._nodes()
            structureId = self.selectedStructure()
            if structureId not in self._lastSlice:
                raise ValueError("add a prompt for this structure first: propagation starts at its slice")
            self.statusLabel.text = "Propagating..."
            self.logic.propagate(
                volumeNode, structureId, self._lastSlice[structureId], self.directionComboBox.currentText,
                int(self.maxSlicesSpinBox.value),
                apply=self._applier(volumeNode, segmentationNode, structureId),
                onProgress=self._onProgress, onFinished=self._onFinished,
            )

        self._run(start)

    def onClearPrompts(self):
        structureId = self.selectedStructure()
        self._lastSlice.pop(structureId, None)
        self._removePointMarkups(structureId)
        self._removeBoxPreview()
        self._run(lambda: self.logic.clearPrompts(structureId, onFinished=self._onFinished))

    def onCancel(self):
        self.logic.cancel()
