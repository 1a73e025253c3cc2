"""BrainSAM: automatic and interactive segmentation of 12 subcortical structures in T1 MRI
(SAM + LoRA, through libbrainsam). The module segments everything at once; interactive
prompts live in the Segment Editor effect "BrainSAM" (SegmentEditorBrainSAM)."""

import logging
import time

import numpy as np
import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

import BrainSAMLib  # noqa: F401  (puts the brainsam package on the path in a checkout)
from brainsam import binding
from BrainSAMLib.engine import Engine
from BrainSAMLib.settings import DEVICE_CHOICES, ModelSettings, read_settings, write_settings
from BrainSAMLib.structures import STRUCTURES, structure
from BrainSAMLib.worker import JobWorker


class BrainSAM(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "BrainSAM"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["BrainSAM developers"]
        self.parent.helpText = (
            "Segments left/right thalamus, caudate, putamen, pallidum, hippocampus and amygdala "
            "in T1-weighted MRI with SAM adapted by LoRA. 'Segment all structures' runs the "
            "automatic segmentation; refine with point and box prompts in the Segment Editor "
            "effect 'BrainSAM'."
        )
        self.parent.acknowledgementText = (
            "Method after 'SAM + LoRA for subcortical segmentation'. Colours from the "
            "FreeSurfer colour table."
        )


class BrainSAMWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Thin UI over BrainSAMLogic."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.ui = None
        self._job = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BrainSAM.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = BrainSAMLogic.shared()

        for device in DEVICE_CHOICES:
            self.ui.deviceComboBox.addItem(device)
        settings = self.logic.settings()
        self.ui.checkpointPathLineEdit.currentPath = settings.checkpoint
        self.ui.adapterPathLineEdit.currentPath = settings.adapter
        self.ui.deviceComboBox.setCurrentIndex(DEVICE_CHOICES.index(settings.device))
        self.ui.checkpointPathLineEdit.connect("currentPathChanged(QString)", self.onSettingsChanged)
        self.ui.adapterPathLineEdit.connect("currentPathChanged(QString)", self.onSettingsChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onSettingsChanged)
        self.ui.segmentAllButton.connect("clicked(bool)", self.onSegmentAll)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.runtimeLabel.text = self.logic.runtimeDescription()

    def cleanup(self):
        self.removeObservers()

    def onSettingsChanged(self, *_):
        self.logic.saveSettings(
            ModelSettings(
                checkpoint=self.ui.checkpointPathLineEdit.currentPath,
                adapter=self.ui.adapterPathLineEdit.currentPath,
                device=self.ui.deviceComboBox.currentText,
            )
        )

    def onSegmentAll(self, *_):
        volumeNode = self.ui.inputVolumeSelector.currentNode()
        segmentationNode = self.ui.segmentationSelector.currentNode()
        if volumeNode is None or segmentationNode is None:
            slicer.util.errorDisplay("Select a T1 volume and a segmentation first.")
            return
        self.ui.segmentAllButton.enabled = False
        self.ui.cancelButton.enabled = True
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = "Segmenting all structures..."
        self._job = self.logic.segmentAll(
            volumeNode,
            segmentationNode,
            onProgress=self.onProgress,
            onFinished=self.onFinished,
        )

    def onProgress(self, done, total):
        self.ui.progressBar.maximum = max(total, 1)
        self.ui.progressBar.value = done

    def onFinished(self, result, message):
        self.ui.segmentAllButton.enabled = True
        self.ui.cancelButton.enabled = False
        self.ui.statusLabel.text = message
        if result is not None:
            self.ui.statsTextEdit.plainText = BrainSAMLogic.statsText(result.stats)

    def onCancel(self, *_):
        self.logic.cancel()


class BrainSAMLogic(ScriptedLoadableModuleLogic):
    """Everything the module and the effect do: one engine on one worker thread; outcomes
    applied on the main thread by a Qt timer. Shared by the module and the effect
    (BrainSAMLogic.shared()) so that both use the same model, session and thread."""

    _shared = None

    @classmethod
    def shared(cls):
        """The process-wide logic."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.engine = Engine()
        self.worker = JobWorker()
        self._submittedVolumeKey = None
        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.connect("timeout()", self._drain)

    # -- settings ------------------------------------------------------------------------

    def settings(self):
        """Model settings from Slicer's settings."""
        return read_settings(qt.QSettings())

    def saveSettings(self, settings):
        """Store model settings; the model is reloaded on the next job."""
        write_settings(qt.QSettings(), settings)

    def runtimeDescription(self):
        """One line on the library and libtorch, or why the library cannot load."""
        try:
            library = binding.load_library()
            info = library.runtime_info()
        except binding.BrainSAMError as error:
            return f"libbrainsam not available: {error}"
        cuda = f"CUDA ({info['cuda_device_count']} devices)" if info["cuda_available"] else "no CUDA"
        return f"libbrainsam {library.version()}, libtorch {info['libtorch_version']}, {cuda}"

    # -- volume input --------------------------------------------------------------------

    @staticmethod
    def ijkToRas(volumeNode):
        """4x4 IJK-to-RAS of a volume, world transform included (linear transforms only)."""
        matrix = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(matrix)
        ijkToRas = slicer.util.arrayFromVTKMatrix(matrix)
        parent = volumeNode.GetParentTransformNode()
        if parent is not None:
            if not parent.IsTransformToWorldLinear():
                raise ValueError(
                    f"volume {volumeNode.GetName()} is under a non-linear transform: harden it first"
                )
            toWorld = vtk.vtkMatrix4x4()
            parent.GetMatrixTransformToWorld(toWorld)
            ijkToRas = slicer.util.arrayFromVTKMatrix(toWorld) @ ijkToRas
        return np.asarray(ijkToRas, dtype=np.float64)

    def _volumeInput(self, volumeNode):
        """(key, array or None, ijkToRas), taken on the main thread. The voxels are copied
        only when the session does not hold this volume yet."""
        ijkToRas = self.ijkToRas(volumeNode)
        key = (volumeNode.GetID(), volumeNode.GetImageData().GetMTime(), ijkToRas.tobytes())
        array = None
        if key != self._submittedVolumeKey:
            array = np.array(slicer.util.arrayFromVolume(volumeNode), copy=True)
        return key, array, ijkToRas

    def _prepare(self, volumeNode):
        """A worker-side function that loads the model and volume as needed."""
        settings = self.settings()
        key, array, ijkToRas = self._volumeInput(volumeNode)
        self._submittedVolumeKey = key

        def prepare():
            self.engine.ensure_model(settings)
            self.engine.set_volume(key, array, ijkToRas)

        return prepare

    # -- jobs ----------------------------------------------------------------------------

    def _submit(self, description, work, onDone, onProgress=None, onFinished=None):
        """Queue `work(job)`; on success onDone(result) then onFinished(result, message);
        errors are shown with errorDisplay and reported as onFinished(None, message)."""

        def done(result):
            try:
                onDone(result)
            except Exception as error:  # noqa: BLE001 - shown, never a crash
                failed(error)
                return
            if onFinished:
                onFinished(result, f"{description}: done.")

        def failed(error):
            # The session may not hold the volume any more: send it again next time.
            self._submittedVolumeKey = None
            logging.error("BrainSAM: %s failed: %s", description, error)
            slicer.util.errorDisplay(f"BrainSAM could not {description.lower()}:\n\n{error}")
            if onFinished:
                onFinished(None, f"{description}: failed.")

        def cancelled():
            self._submittedVolumeKey = None  # the volume may not have reached the session
            if onFinished:
                onFinished(None, f"{description}: cancelled.")

        job = self.worker.submit(
            work,
            on_done=done,
            on_error=failed,
            on_cancelled=cancelled,
            on_progress=onProgress,
            description=description,
        )
        if not self._timer.isActive():
            self._timer.start()
        return job

    def _drain(self):
        try:
            self.worker.drain()
        except Exception as error:  # noqa: BLE001 - a UI callback failed; show it
            logging.exception("BrainSAM callback failed")
            slicer.util.errorDisplay(f"BrainSAM: {error}")
        if not self.worker.busy:
            self._timer.stop()

    def cancel(self):
        """Cancel queued and running work."""
        self.worker.cancel_all()

    def waitForIdle(self, timeoutSeconds=3600.0):
        """Process events until all jobs are applied (for tests and scripts)."""
        deadline = time.monotonic() + timeoutSeconds
        while self.worker.busy:
            if time.monotonic() > deadline:
                raise TimeoutError(f"BrainSAM still busy after {timeoutSeconds} s")
            slicer.app.processEvents()
            self._drain()
            time.sleep(0.02)

    def _guard(self, volumeNode, segmentationNode):
        if volumeNode is None or segmentationNode is None:
            raise ValueError("select a source volume and a segmentation first")

    def segmentAll(self, volumeNode, segmentationNode, onProgress=None, onFinished=None, beforeWrite=None):
        """Automatic segmentation into 12 named, coloured segments (created or updated)."""
        self._guard(volumeNode, segmentationNode)
        prepare = self._prepare(volumeNode)

        def work(job):
            prepare()
            return self.engine.segment_all(job.report)

        def apply(result):
            if beforeWrite:
                beforeWrite()
            self.writeLabels(segmentationNode, volumeNode, result)

        return self._submit("Segment all structures", work, apply, onProgress, onFinished)

    def addPoint(self, volumeNode, segmentationNode, structureId, ijk, positive, onFinished=None, beforeWrite=None):
        """Point prompt at voxel (i, j, k), then re-segment its slice."""
        self._guard(volumeNode, segmentationNode)
        prepare = self._prepare(volumeNode)
        ijk = [float(c) for c in ijk]

        def work(job):
            prepare()
            return self.engine.add_point_and_segment(structureId, ijk, positive)

        return self._submit(
            "Add point", work, self._applier(volumeNode, segmentationNode, beforeWrite), None, onFinished
        )

    def addBox(self, volumeNode, segmentationNode, structureId, ijkA, ijkB, onFinished=None, beforeWrite=None):
        """Box prompt from two corners, then re-segment its slice."""
        self._guard(volumeNode, segmentationNode)
        prepare = self._prepare(volumeNode)
        ijkA, ijkB = [float(c) for c in ijkA], [float(c) for c in ijkB]

        def work(job):
            prepare()
            return self.engine.add_box_and_segment(structureId, ijkA, ijkB)

        return self._submit(
            "Add box", work, self._applier(volumeNode, segmentationNode, beforeWrite), None, onFinished
        )

    def propagate(self, volumeNode, segmentationNode, structureId, startSlice, direction,
                  maxSlices=1000, onProgress=None, onFinished=None, beforeWrite=None):
        """Propagate a structure from `startSlice` through neighbouring slices."""
        self._guard(volumeNode, segmentationNode)
        prepare = self._prepare(volumeNode)

        def work(job):
            prepare()
            return self.engine.propagate(structureId, int(startSlice), direction, maxSlices, job.report)

        return self._submit(
            "Propagate", work, self._applier(volumeNode, segmentationNode, beforeWrite), onProgress, onFinished
        )

    def clearPrompts(self, structureId, sliceIndex=None, onFinished=None):
        """Forget the prompts of a structure (the segment itself is kept)."""

        def work(job):
            self.engine.clear_prompts(structureId, sliceIndex)

        return self._submit("Clear prompts", work, lambda result: None, None, onFinished)

    def _applier(self, volumeNode, segmentationNode, beforeWrite):
        def apply(result):
            if beforeWrite:
                beforeWrite()
            self.writeLabels(segmentationNode, volumeNode, result)

        return apply

    # -- writing segments ------------------------------------------------------------------

    @staticmethod
    def ensureSegments(segmentationNode, classIds):
        """Create missing BrainSAM segments and set their names and colours; returns
        class id -> segment id."""
        segmentation = segmentationNode.GetSegmentation()
        ids = {}
        for classId in classIds:
            info = structure(classId)
            segment = segmentation.GetSegment(info.segment_id)
            if segment is None:
                segmentation.AddEmptySegment(info.segment_id, info.name, list(info.colour))
                segment = segmentation.GetSegment(info.segment_id)
            segment.SetName(info.name)
            segment.SetColor(*info.colour)
            ids[classId] = info.segment_id
        return ids

    def writeLabels(self, segmentationNode, volumeNode, result):
        """Write the result's structures from its label volume into the segmentation."""
        if segmentationNode.GetDisplayNode() is None:
            segmentationNode.CreateDefaultDisplayNodes()
        if not segmentationNode.GetNodeReference(
            segmentationNode.GetReferenceImageGeometryReferenceRole()
        ):
            segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segmentIds = self.ensureSegments(segmentationNode, result.structures)
        for classId in result.structures:
            mask = (result.labels == classId).astype(np.uint8)
            slicer.util.updateSegmentBinaryLabelmapFromArray(
                mask, segmentationNode, segmentIds[classId], volumeNode
            )

    @staticmethod
    def statsText(stats):
        """A table of volume and confidence per structure."""
        lines = [f"{'structure':<18}{'volume (mm3)':>14}{'confidence':>12}"]
        for info in STRUCTURES:
            if info.class_id in stats:
                volume, confidence = stats[info.class_id]
                lines.append(f"{info.name:<18}{volume:>14.1f}{confidence:>12.3f}")
        return "\n".join(lines)


class BrainSAMTest(ScriptedLoadableModuleTest):
    """Run inside Slicer (Developer mode 'Reload and Test', or
    slicer.modules.brainsam.widgetRepresentation().self().onReloadAndTest()):
    downloads SampleData 'MRHead', segments it automatically, checks 12 non-empty segments."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegmentAllOnMRHead()

    def test_SegmentAllOnMRHead(self):
        import SampleData

        self.delayDisplay("Loading MRHead")
        volumeNode = SampleData.downloadSample("MRHead")
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        logic = BrainSAMLogic.shared()
        outcome = {}
        self.delayDisplay("Segmenting all structures (may take minutes on a CPU)")
        logic.segmentAll(
            volumeNode,
            segmentationNode,
            onFinished=lambda result, message: outcome.update(result=result, message=message),
        )
        logic.waitForIdle()
        self.assertIsNotNone(outcome.get("result"), outcome.get("message"))
        for info in STRUCTURES:
            segment = segmentationNode.GetSegmentation().GetSegment(info.segment_id)
            self.assertIsNotNone(segment, f"segment {info.name} missing")
            voxels = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, info.segment_id, volumeNode)
            self.assertGreater(int(np.count_nonzero(voxels)), 0, f"segment {info.name} is empty")
            self.assertEqual(tuple(round(c * 255) for c in segment.GetColor()), info.rgb)
        self.delayDisplay("Test passed")
