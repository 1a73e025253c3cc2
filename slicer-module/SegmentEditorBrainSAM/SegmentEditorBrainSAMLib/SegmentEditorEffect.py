"""Segment Editor effect "BrainSAM": click (positive point), Ctrl/Shift+click (negative
point) or drag (box) on a slice view for the selected structure; propagate through
neighbouring slices; segment all 12 structures. Thin: the work is in BrainSAMLogic, on
its worker thread; every write goes after saveStateForUndo() so Undo restores it."""

import os

import qt
import slicer
import vtk
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from BrainSAMLib import geometry
from BrainSAMLib.structures import STRUCTURES, structure_for_segment_id

#: A press and release further apart than this (pixels) is a box drag, not a click.
DRAG_PIXELS = 5


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    """The BrainSAM effect."""

    def __init__(self, scriptedEffect):
        scriptedEffect.name = "BrainSAM"
        scriptedEffect.perSegment = False
        scriptedEffect.requireSegments = False
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self._press = None  # (x, y) of a left-button press in a slice view
        self._lastSlice = {}  # structure id -> slice of its last prompt
        self._logic = None

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
            "Pick a structure, then in a slice view: <b>click</b> adds a point inside it, "
            "<b>Ctrl/Shift+click</b> a point outside, <b>drag</b> draws a box. The slice is "
            "re-segmented at once. <b>Propagate</b> carries the structure to neighbouring "
            "slices. <b>Segment all</b> creates the 12 segments automatically. Undo works as "
            "for every effect.</html>"
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
        self.clearPromptsButton.toolTip = "Forget this structure's prompts (the segment is kept)."
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

    def deactivate(self):
        self._press = None

    def _syncStructureToSelectedSegment(self):
        parameterNode = self.scriptedEffect.parameterSetNode()
        if parameterNode is None:
            return
        info = structure_for_segment_id(parameterNode.GetSelectedSegmentID() or "")
        if info is not None:
            self.structureComboBox.setCurrentIndex(info.class_id - 1)

    # -- helpers ---------------------------------------------------------------------------

    def selectedStructure(self):
        return int(self.structureComboBox.currentIndex) + 1

    def _nodes(self):
        parameterNode = self.scriptedEffect.parameterSetNode()
        segmentationNode = parameterNode.GetSegmentationNode()
        # Slicer >= 5.2 says "source volume", older versions "master volume".
        getSource = getattr(parameterNode, "GetSourceVolumeNode", None) or parameterNode.GetMasterVolumeNode
        volumeNode = getSource()
        if volumeNode is None or segmentationNode is None:
            raise ValueError("select a segmentation and a source volume in the Segment Editor first")
        return volumeNode, segmentationNode

    def _ijk(self, xy, viewWidget, volumeNode, segmentationNode):
        """Voxel coordinates (i, j, k) of the source volume under a view position."""
        getImage = getattr(self.scriptedEffect, "sourceVolumeImageData", None) or self.scriptedEffect.masterVolumeImageData
        image = getImage()
        dims = volumeNode.GetImageData().GetDimensions()
        if image is not None and tuple(image.GetDimensions()) == tuple(dims):
            return self.xyToIjk(xy, viewWidget, image, segmentationNode.GetParentTransformNode())
        # The segmentation's geometry differs from the volume's: go through RAS.
        ras = self.xyToRas(xy, viewWidget)
        return list(geometry.ras_to_ijk(ras, self.logic.ijkToRas(volumeNode)))

    def _run(self, action):
        """Call a logic method; a problem before any work starts is shown, never raised."""
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - shown, never a crash
            slicer.util.errorDisplay(f"BrainSAM: {error}")
            return None

    def _onProgress(self, done, total):
        self.progressBar.maximum = max(total, 1)
        self.progressBar.value = done

    def _onFinished(self, result, message):
        self.statusLabel.text = message
        if result is not None and result.slices:
            self.statusLabel.text = f"{message} Slices: {', '.join(str(s) for s in result.slices[:12])}"

    # -- interaction -----------------------------------------------------------------------

    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        if viewWidget.className() != "qMRMLSliceWidget":
            return False
        if eventId == vtk.vtkCommand.LeftButtonPressEvent:
            self._press = tuple(callerInteractor.GetEventPosition())
            return True
        if eventId == vtk.vtkCommand.LeftButtonReleaseEvent and self._press is not None:
            start, self._press = self._press, None
            end = tuple(callerInteractor.GetEventPosition())
            negative = bool(callerInteractor.GetControlKey() or callerInteractor.GetShiftKey())
            self._run(lambda: self._prompt(start, end, negative, viewWidget))
            return True
        return False

    def _prompt(self, start, end, negative, viewWidget):
        volumeNode, segmentationNode = self._nodes()
        structureId = self.selectedStructure()
        ijkStart = self._ijk(start, viewWidget, volumeNode, segmentationNode)
        shape = slicer.util.arrayFromVolume(volumeNode).shape
        if not geometry.inside(ijkStart, shape):
            raise ValueError("the click is outside the source volume")
        dragged = max(abs(end[0] - start[0]), abs(end[1] - start[1])) >= DRAG_PIXELS
        undo = self.scriptedEffect.saveStateForUndo

        def finished(result, message):
            if result is not None and result.slices:
                self._lastSlice[structureId] = result.slices[0]  # propagation starts here
            self._onFinished(result, message)

        if dragged:
            ijkEnd = self._ijk(end, viewWidget, volumeNode, segmentationNode)
            self.statusLabel.text = "Segmenting the box..."
            self.logic.addBox(volumeNode, segmentationNode, structureId, ijkStart, ijkEnd,
                              onFinished=finished, beforeWrite=undo)
        else:
            self.statusLabel.text = "Segmenting with the point..."
            self.logic.addPoint(volumeNode, segmentationNode, structureId, ijkStart, not negative,
                                onFinished=finished, beforeWrite=undo)

    # -- buttons ---------------------------------------------------------------------------

    def onSegmentAll(self):
        def start():
            volumeNode, segmentationNode = self._nodes()
            self.statusLabel.text = "Segmenting all structures..."
            self.logic.segmentAll(volumeNode, segmentationNode, onProgress=self._onProgress,
                                  onFinished=self._onFinished,
                                  beforeWrite=self.scriptedEffect.saveStateForUndo)

        self._run(start)

    def onPropagate(self):
        def start():
            volumeNode, segmentationNode = self._nodes()
            structureId = self.selectedStructure()
            if structureId not in self._lastSlice:
                raise ValueError("add a prompt for this structure first: propagation starts at its slice")
            self.statusLabel.text = "Propagating..."
            self.logic.propagate(volumeNode, segmentationNode, structureId, self._lastSlice[structureId],
                                 self.directionComboBox.currentText, int(self.maxSlicesSpinBox.value),
                                 onProgress=self._onProgress, onFinished=self._onFinished,
                                 beforeWrite=self.scriptedEffect.saveStateForUndo)

        self._run(start)

    def onClearPrompts(self):
        structureId = self.selectedStructure()
        self._lastSlice.pop(structureId, None)
        self._run(lambda: self.logic.clearPrompts(structureId, onFinished=self._onFinished))

    def onCancel(self):
        self.logic.cancel()
