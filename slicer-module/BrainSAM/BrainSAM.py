"""BrainSAM: automatic and interactive segmentation of 12 subcortical structures in T1 MRI
(SAM + LoRA, through libbrainsam). The module segments everything at once and holds the
settings; interactive prompts live in the Segment Editor effect "BrainSAM"
(SegmentEditorBrainSAM).

This file loads without the `brainsam` package (a fresh Slicer): the package is imported
only when work starts, after the module offered to install it."""

import dataclasses
import logging
import os
import time
from shutil import copyfile

import ctk
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

import BrainSAMLib  # noqa: F401  (puts the brainsam package on the path in a checkout)
from BrainSAMLib import adapt, install
from BrainSAMLib.engine import Engine
from BrainSAMLib.settings import (
    DEVICE_CHOICES,
    PRECISION_CHOICES,
    InstallSettings,
    ModelSettings,
    read_install_settings,
    read_settings,
    valid_device,
    write_install_settings,
    write_settings,
)
from BrainSAMLib.structures import STRUCTURES, structure
from BrainSAMLib.tasks import TaskRunner

#: How often (ms) the UI polls running library jobs. Short: the poll itself is a few
#: microseconds of Python, and the next job of a multi-step task starts at the next poll.
POLL_INTERVAL_MS = 10

ACKNOWLEDGEMENT = (
    "BrainSAM adapts Segment Anything (Kirillov et al., Meta AI, Apache-2.0) with LoRA for "
    "subcortical segmentation. Structure names and colours follow the FreeSurfer colour "
    "table. Built on 3D Slicer (slicer.org) and libtorch."
)


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
            "effect 'BrainSAM'. On first use the module offers to install its Python package "
            "'brainsam' (see Installation)."
        )
        self.parent.acknowledgementText = ACKNOWLEDGEMENT


class BrainSAMWidget(ScriptedLoadableModuleWidget):
    """Thin UI over BrainSAMLogic: inputs, settings, installation, Segment all."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        self.logic = None
        self.ui = None
        self._loading = False

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BrainSAM.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = BrainSAMLogic.shared()

        for device in DEVICE_CHOICES:
            self.ui.deviceComboBox.addItem(device)
        for precision in PRECISION_CHOICES:
            self.ui.precisionComboBox.addItem(precision)
        self._showSettings()
        self.ui.checkpointPathLineEdit.connect("currentPathChanged(QString)", self.onSettingsChanged)
        self.ui.adapterPathLineEdit.connect("currentPathChanged(QString)", self.onSettingsChanged)
        self.ui.deviceComboBox.connect("currentTextChanged(QString)", self.onSettingsChanged)
        self.ui.precisionComboBox.connect("currentIndexChanged(int)", self.onSettingsChanged)
        self.ui.mirrorViewsCheckBox.connect("toggled(bool)", self.onSettingsChanged)
        self.ui.shiftViewsCheckBox.connect("toggled(bool)", self.onSettingsChanged)
        self.ui.orientationViewsCheckBox.connect("toggled(bool)", self.onSettingsChanged)
        self.ui.packageSourceLineEdit.connect("editingFinished()", self.onInstallSettingsChanged)
        self.ui.libraryPathLineEdit.connect("currentPathChanged(QString)", self.onInstallSettingsChanged)
        self.ui.installButton.connect("clicked(bool)", self.onInstall)
        self.ui.segmentAllButton.connect("clicked(bool)", self.onSegmentAll)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self._setupAdaptPanel()
        self.updateRuntime()

    # -- "Adapt to my data" ------------------------------------------------------------------

    def _setupAdaptPanel(self):
        """The panel: volume + segmentation pairs from the scene, a time budget, Start /
        progress (ETA, live validation Dice) / Cancel, then Use / Export the adapter."""
        panel = ctk.ctkCollapsibleButton()
        panel.text = "Adapt to my data"
        panel.collapsed = True
        self.layout.addWidget(panel)
        form = qt.QFormLayout(panel)
        self.adaptVolumeSelector = slicer.qMRMLNodeComboBox()
        self.adaptVolumeSelector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
        self.adaptVolumeSelector.noneEnabled = True
        self.adaptVolumeSelector.setMRMLScene(slicer.mrmlScene)
        self.adaptVolumeSelector.toolTip = "A T1 volume of your site"
        form.addRow("Volume:", self.adaptVolumeSelector)
        self.adaptSegmentationSelector = slicer.qMRMLNodeComboBox()
        self.adaptSegmentationSelector.nodeTypes = ["vtkMRMLSegmentationNode"]
        self.adaptSegmentationSelector.noneEnabled = True
        self.adaptSegmentationSelector.setMRMLScene(slicer.mrmlScene)
        self.adaptSegmentationSelector.toolTip = (
            "Its corrected segmentation: segments named after the structures (e.g. Left-Thalamus, "
            "L putamen); other segments are ignored, missing structures are not trained"
        )
        form.addRow("Corrected segmentation:", self.adaptSegmentationSelector)
        buttons = qt.QHBoxLayout()
        self.adaptAddButton = qt.QPushButton("Add pair")
        self.adaptClearButton = qt.QPushButton("Clear pairs")
        buttons.addWidget(self.adaptAddButton)
        buttons.addWidget(self.adaptClearButton)
        form.addRow(buttons)
        self.adaptPairsList = qt.QListWidget()
        form.addRow("Pairs:", self.adaptPairsList)
        self.adaptSiteLineEdit = qt.QLineEdit()
        self.adaptSiteLineEdit.text = "my-site"
        form.addRow("Site name:", self.adaptSiteLineEdit)
        self.adaptMinutesSpinBox = qt.QDoubleSpinBox()
        self.adaptMinutesSpinBox.minimum = 0.5
        self.adaptMinutesSpinBox.maximum = 600.0
        self.adaptMinutesSpinBox.value = 15.0
        self.adaptMinutesSpinBox.suffix = " min"
        form.addRow("Time budget:", self.adaptMinutesSpinBox)
        runButtons = qt.QHBoxLayout()
        self.adaptStartButton = qt.QPushButton("Start")
        self.adaptCancelButton = qt.QPushButton("Cancel")
        self.adaptCancelButton.enabled = False
        runButtons.addWidget(self.adaptStartButton)
        runButtons.addWidget(self.adaptCancelButton)
        form.addRow(runButtons)
        self.adaptProgressBar = qt.QProgressBar()
        form.addRow(self.adaptProgressBar)
        self.adaptStatusLabel = qt.QLabel("")
        self.adaptStatusLabel.wordWrap = True
        form.addRow(self.adaptStatusLabel)
        resultButtons = qt.QHBoxLayout()
        self.adaptUseButton = qt.QPushButton("Use this adapter")
        self.adaptExportButton = qt.QPushButton("Export adapter...")
        self.adaptUseButton.enabled = False
        self.adaptExportButton.enabled = False
        resultButtons.addWidget(self.adaptUseButton)
        resultButtons.addWidget(self.adaptExportButton)
        form.addRow(resultButtons)
        self._adaptPairs = []
        self._adaptResult = None
        self.adaptAddButton.connect("clicked(bool)", self.onAdaptAddPair)
        self.adaptClearButton.connect("clicked(bool)", self.onAdaptClearPairs)
        self.adaptStartButton.connect("clicked(bool)", self.onAdaptStart)
        self.adaptCancelButton.connect("clicked(bool)", self.onCancel)
        self.adaptUseButton.connect("clicked(bool)", self.onAdaptUse)
        self.adaptExportButton.connect("clicked(bool)", self.onAdaptExport)

    def onAdaptAddPair(self, *_):
        volumeNode = self.adaptVolumeSelector.currentNode()
        segmentationNode = self.adaptSegmentationSelector.currentNode()
        if volumeNode is None or segmentationNode is None:
            self.adaptStatusLabel.text = "Select a volume and its corrected segmentation first."
            return
        mapping = BrainSAMLogic.segmentMapping(segmentationNode)
        self._adaptPairs.append((volumeNode, segmentationNode))
        self.adaptPairsList.addItem(f"{volumeNode.GetName()} + {segmentationNode.GetName()}: {mapping.note()}")

    def onAdaptClearPairs(self, *_):
        self._adaptPairs = []
        self.adaptPairsList.clear()

    def onAdaptStart(self, *_):
        if not self._adaptPairs:
            self.adaptStatusLabel.text = "Add at least one volume + segmentation pair."
            return
        problem = self.logic.ensureReady(ask=True)
        if problem is not None:
            self.adaptStatusLabel.text = problem.message
            return
        self.adaptStartButton.enabled = False
        self.adaptCancelButton.enabled = True
        self.adaptUseButton.enabled = False
        self.adaptExportButton.enabled = False
        self.adaptProgressBar.value = 0
        self.adaptStatusLabel.text = "Preparing the data and validating the model you start from..."
        try:
            self.logic.startAdapt(
                list(self._adaptPairs),
                float(self.adaptMinutesSpinBox.value),
                self.adaptSiteLineEdit.text.strip() or "my-site",
                onStatus=self.onAdaptStatus,
                onFinished=self.onAdaptFinished,
            )
        except Exception as error:  # noqa: BLE001 - bad input is shown, never a crash
            self.onAdaptFinished(None, f"Adapt failed: {error}")

    def onAdaptStatus(self, status):
        self.adaptProgressBar.maximum = max(status.get("total", 0), 1)
        self.adaptProgressBar.value = status.get("iteration", 0)
        self.adaptStatusLabel.text = adapt.describe(status)

    def onAdaptFinished(self, result, message):
        self.adaptStartButton.enabled = True
        self.adaptCancelButton.enabled = False
        self._adaptResult = result
        if result is not None:
            message += f" Best validation Dice {result['best_validation_dice']:.3f}."
        self.adaptStatusLabel.text = message
        self.adaptUseButton.enabled = result is not None
        self.adaptExportButton.enabled = result is not None

    def onAdaptUse(self, *_):
        if self._adaptResult is None:
            return
        self.logic.useAdapter(self._adaptResult["adapter_path"])
        self._showSettings()
        self.adaptStatusLabel.text = f"Using {self._adaptResult['adapter_path']} for this site."

    def onAdaptExport(self, *_):
        if self._adaptResult is None:
            return
        path = qt.QFileDialog.getSaveFileName(
            None, "Export adapter", "site-adapter.safetensors", "Adapters (*.safetensors)"
        )
        if path:
            copyfile(self._adaptResult["adapter_path"], path)
            self.adaptStatusLabel.text = f"Adapter exported to {path}."

    def _showSettings(self):
        self._loading = True
        try:
            settings = self.logic.settings()
            self.ui.checkpointPathLineEdit.currentPath = settings.checkpoint
            self.ui.adapterPathLineEdit.currentPath = settings.adapter
            self.ui.deviceComboBox.setCurrentText(settings.device)
            self.ui.precisionComboBox.setCurrentIndex(PRECISION_CHOICES.index(settings.precision))
            self.ui.mirrorViewsCheckBox.checked = settings.mirror_views
            self.ui.shiftViewsCheckBox.checked = settings.shift_views
            self.ui.orientationViewsCheckBox.checked = settings.orientation_views
            installSettings = self.logic.installSettings()
            self.ui.packageSourceLineEdit.text = installSettings.package_source
            self.ui.libraryPathLineEdit.currentPath = installSettings.library
        finally:
            self._loading = False

    def cleanup(self):
        pass

    def updateRuntime(self):
        """Show which library runs (or what is missing) without loading a model."""
        problem = self.logic.missingDependency()
        self.ui.installStatusLabel.text = problem.message if problem else "BrainSAM is installed."
        self.ui.runtimeLabel.text = problem.message if problem else self.logic.runtimeDescription()

    def onSettingsChanged(self, *_):
        if self._loading:
            return
        device = self.ui.deviceComboBox.currentText.strip().lower()
        if not valid_device(device):
            self.ui.statusLabel.text = f"Device '{device}' is not valid: use auto, cpu, cuda or cuda:N."
            return
        self.logic.saveSettings(
            ModelSettings(
                checkpoint=self.ui.checkpointPathLineEdit.currentPath,
                adapter=self.ui.adapterPathLineEdit.currentPath,
                device=device,
                precision=self.ui.precisionComboBox.currentText,
                mirror_views=bool(self.ui.mirrorViewsCheckBox.checked),
                shift_views=bool(self.ui.shiftViewsCheckBox.checked),
                orientation_views=bool(self.ui.orientationViewsCheckBox.checked),
            )
        )

    def onInstallSettingsChanged(self, *_):
        if self._loading:
            return
        self.logic.saveInstallSettings(
            InstallSettings(
                library=self.ui.libraryPathLineEdit.currentPath,
                package_source=self.ui.packageSourceLineEdit.text.strip(),
            )
        )
        self.updateRuntime()

    def onInstall(self, *_):
        self.onInstallSettingsChanged()
        problem = self.logic.ensureReady(ask=True)
        self.updateRuntime()
        if problem is not None:
            self.ui.statusLabel.text = problem.message

    def onSegmentAll(self, *_):
        volumeNode = self.ui.inputVolumeSelector.currentNode()
        segmentationNode = self.ui.segmentationSelector.currentNode()
        if volumeNode is None or segmentationNode is None:
            self.ui.statusLabel.text = "Select a T1 volume and a segmentation first."
            return
        problem = self.logic.ensureReady(ask=True)
        if problem is not None:
            self.ui.statusLabel.text = problem.message
            self.updateRuntime()
            return
        self.ui.segmentAllButton.enabled = False
        self.ui.cancelButton.enabled = True
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = "Segmenting all structures..."
        self.logic.segmentAll(
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
    """Everything the module and the effect do. One engine (library, model, session) on
    the main thread; long work runs as library jobs that a Qt timer polls (tasks.py), so
    the UI never waits and the work runs at full speed. Shared by the module and the
    effect (BrainSAMLogic.shared()) so that both use the same model and session."""

    _shared = None

    @classmethod
    def shared(cls):
        """The process-wide logic."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.engine = Engine(lambda: install.load_library(self.installSettings()))
        self.runner = TaskRunner()
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self.poll)

    # -- settings and installation ---------------------------------------------------------

    def settings(self):
        """Model settings from Slicer's settings."""
        return read_settings(qt.QSettings())

    def saveSettings(self, settings):
        """Store model settings; the model or session is remade on the next job."""
        write_settings(qt.QSettings(), settings)

    def installSettings(self):
        """Where the package and library come from."""
        return read_install_settings(qt.QSettings())

    def saveInstallSettings(self, settings):
        """Store the installation settings (a new library is used after a restart)."""
        write_install_settings(qt.QSettings(), settings)

    def missingDependency(self):
        """None when BrainSAM can run, else an install.Problem naming what is missing."""
        return install.library_problem(self.installSettings())

    def ensureReady(self, ask=True):
        """Offer to install what is missing (asks first); None when ready."""
        problem = install.ensure_ready(slicer.util, self.installSettings(), ask=ask)
        if problem is not None:
            slicer.util.showStatusMessage(f"BrainSAM: {problem.message}", 10000)
        return problem

    def runtimeDescription(self):
        """One line on the library and libtorch, or why the library cannot load."""
        try:
            library = install.load_library(self.installSettings())
            info = library.runtime_info()
        except Exception as error:  # noqa: BLE001 - shown in the settings
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

    def _prepare(self, volumeNode):
        """Load the model (first use: seconds) and give the session the volume when it
        does not hold it yet (the voxels are copied only then)."""
        self.engine.ensure_model(self.settings())
        ijkToRas = self.ijkToRas(volumeNode)
        key = (volumeNode.GetID(), volumeNode.GetImageData().GetMTime(), ijkToRas.tobytes())
        if self.engine.needs_volume(key):
            array = np.array(slicer.util.arrayFromVolume(volumeNode), copy=True)
            self.engine.set_volume(key, array, ijkToRas)

    # -- tasks ---------------------------------------------------------------------------

    def _submit(self, description, volumeNode, steps, onDone, onProgress=None, onFinished=None):
        """Queue a task: prepare the engine for `volumeNode`, then `steps(task)`. On
        success onDone(result) then onFinished(result, message); a failure is logged,
        shown in the status bar and reported as onFinished(None, message) - never a
        modal dialog, never an exception into Qt."""

        def run(task):
            if volumeNode is not None:
                self._prepare(volumeNode)
            result = yield from steps(task)
            return result

        def done(result):
            try:
                onDone(result)
            except Exception as error:  # noqa: BLE001 - shown, never a crash
                logging.exception("BrainSAM: applying the result failed")
                failed(error)
                return
            if onFinished:
                onFinished(result, f"{description}: done.")

        def failed(error):
            self.engine.forget_volume()  # send the volume again next time
            logging.error("BrainSAM: %s failed: %s", description, error)
            message = f"{description} failed: {error}"
            slicer.util.showStatusMessage(f"BrainSAM: {message}", 10000)
            if onFinished:
                onFinished(None, message)

        def cancelled():
            if onFinished:
                onFinished(None, f"{description}: cancelled.")

        task = self.runner.submit(run, description, done, failed, cancelled, onProgress)
        if not self._timer.isActive():
            self._timer.start()
        return task

    def poll(self):
        """Advance the tasks (Qt timer, main thread)."""
        try:
            self.runner.poll()
        except Exception as error:  # noqa: BLE001 - a UI callback failed; show it
            logging.exception("BrainSAM callback failed")
            slicer.util.showStatusMessage(f"BrainSAM: {error}", 10000)
        if not self.runner.busy:
            self._timer.stop()

    @property
    def busy(self):
        """Whether work is queued or running."""
        return self.runner.busy

    def cancel(self):
        """Cancel queued and running work."""
        self.runner.cancel_all()

    def waitForIdle(self, timeoutSeconds=3600.0):
        """Process events until all work is done (for tests and scripts)."""

        def processEvents(seconds):
            slicer.app.processEvents()
            time.sleep(seconds)

        self.runner.run_until_idle(processEvents, timeoutSeconds, time.monotonic)
        self._timer.stop()

    # -- "Adapt to my data" -----------------------------------------------------------------

    @staticmethod
    def segmentMapping(segmentationNode):
        """How the segmentation's segments map to the 12 structures (adapt.SegmentMapping)."""
        segmentation = segmentationNode.GetSegmentation()
        segments = []
        for index in range(segmentation.GetNumberOfSegments()):
            segmentId = segmentation.GetNthSegmentID(index)
            segments.append((segmentId, segmentation.GetSegment(segmentId).GetName()))
        return adapt.map_segments(segments)

    def adaptPairs(self, nodePairs):
        """(image, ijk_to_ras, labels, ijk_to_ras, "classes", name) tuples for the C ABI
        from (volume node, segmentation node) pairs: each mapped segment becomes its
        structure's class id on the volume's grid; unmapped segments are left out."""
        pairs = []
        for volumeNode, segmentationNode in nodePairs:
            mapping = self.segmentMapping(segmentationNode)
            if not mapping.classes:
                raise ValueError(
                    f"{segmentationNode.GetName()}: no segment is named after one of the 12 "
                    f"structures ({mapping.note()})"
                )
            image = np.array(slicer.util.arrayFromVolume(volumeNode), copy=True)
            masks = {
                classId: slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode)
                for segmentId, classId in mapping.classes.items()
            }
            ijkToRas = self.ijkToRas(volumeNode)
            labels = adapt.label_volume(image.shape, masks)
            pairs.append((image, ijkToRas, labels, ijkToRas, "classes", volumeNode.GetName()))
        return pairs

    @staticmethod
    def adapterFolder():
        """Where adapters made in Slicer are kept (beside Slicer's settings file)."""
        folder = os.path.join(os.path.dirname(qt.QSettings().fileName()), "BrainSAM", "adapters")
        os.makedirs(folder, exist_ok=True)
        return folder

    def startAdapt(self, nodePairs, minutes, siteName, onStatus=None, onFinished=None):
        """Adapt the current model (without its adapter) to the pairs on a library thread,
        polled by the Qt timer; the adapter is written to the adapter folder as
        <site>.safetensors. onFinished(result, message): result is the final status with
        `adapter_path`, or None after a failure or cancel."""
        pairs = self.adaptPairs(nodePairs)
        safeName = "".join(c if c.isalnum() or c in "-_" else "_" for c in siteName) or "site"
        path = os.path.join(self.adapterFolder(), f"{safeName}.safetensors")
        base = dataclasses.replace(self.settings(), adapter="")

        def steps(task):
            library = self.engine.library()
            model = library.load_model(checkpoint=base.checkpoint or None, device=base.device)
            try:
                status = yield from adapt.adapt_steps(task, model, pairs, path, minutes, onStatus)
            finally:
                model.close()
            status["adapter_path"] = path
            adapt.remember_site(qt.QSettings(), siteName, path)
            return status

        return self._submit("Adapt to my data", None, steps, lambda result: None, None, onFinished)

    def useAdapter(self, path):
        """Use `path` as the model's adapter from now on (persisted in the settings)."""
        self.saveSettings(dataclasses.replace(self.settings(), adapter=path))

    @staticmethod
    def _guard(volumeNode, segmentationNode):
        if volumeNode is None or segmentationNode is None:
            raise ValueError("select a source volume and a segmentation first")

    def segmentAll(self, volumeNode, segmentationNode, onProgress=None, onFinished=None, apply=None):
        """Automatic segmentation. `apply(result)` writes it (default: writeLabels into
        12 named, coloured segments, created or updated)."""
        self._guard(volumeNode, segmentationNode)
        if apply is None:
            def apply(result):
                self.writeLabels(segmentationNode, volumeNode, result)

        return self._submit("Segment all structures", volumeNode, self.engine.segment_all_steps,
                            apply, onProgress, onFinished)

    def addPoint(self, volumeNode, structureId, ijk, positive, apply, onFinished=None):
        """Point prompt at voxel (i, j, k); re-segments the coronal slice through it and
        gives the result (only that slice changed) to `apply`."""
        ijk = [float(c) for c in ijk]
        structure(structureId)
        return self._submit(
            "Add point", volumeNode,
            lambda task: self.engine.point_steps(task, structureId, ijk, positive),
            apply, None, onFinished,
        )

    def addBox(self, volumeNode, structureId, ijkA, ijkB, apply, onFinished=None):
        """Box prompt from two corners on one coronal slice; re-segments that slice."""
        ijkA, ijkB = [float(c) for c in ijkA], [float(c) for c in ijkB]
        structure(structureId)
        return self._submit(
            "Add box", volumeNode,
            lambda task: self.engine.box_steps(task, structureId, ijkA, ijkB),
            apply, None, onFinished,
        )

    def propagate(self, volumeNode, structureId, startSlice, direction, maxSlices, apply,
                  onProgress=None, onFinished=None):
        """Propagate a structure from `startSlice` through neighbouring slices."""
        structure(structureId)
        return self._submit(
            "Propagate", volumeNode,
            lambda task: self.engine.propagate_steps(task, structureId, int(startSlice), direction,
                                                     int(maxSlices)),
            apply, onProgress, onFinished,
        )

    def clearPrompts(self, structureId, sliceIndex=None, onFinished=None):
        """Forget the prompts of a structure (the segment itself is kept)."""

        def steps(task):
            self.engine.clear_prompts(structureId, sliceIndex)
            return None
            yield  # a generator with no job

        return self._submit("Clear prompts", None, steps, lambda result: None, None, onFinished)

    # -- writing segments ------------------------------------------------------------------

    @staticmethod
    def ensureSegment(segmentationNode, classId):
        """The id of the structure's BrainSAM segment, created with its FreeSurfer name
        and colour when missing. An existing segment keeps the name and colour the user
        gave it."""
        info = structure(classId)
        segmentation = segmentationNode.GetSegmentation()
        if segmentation.GetSegment(info.segment_id) is None:
            segmentation.AddEmptySegment(info.segment_id, info.name, list(info.colour))
        return info.segment_id

    def writeLabels(self, segmentationNode, volumeNode, result):
        """Write the result's structures from its label volume into the segmentation
        (whole segments: the module's automatic segmentation)."""
        if segmentationNode.GetDisplayNode() is None:
            segmentationNode.CreateDefaultDisplayNodes()
        if not segmentationNode.GetNodeReference(
            segmentationNode.GetReferenceImageGeometryReferenceRole()
        ):
            segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        for classId in result.structures:
            segmentId = self.ensureSegment(segmentationNode, classId)
            mask = (result.labels == classId).astype(np.uint8)
            slicer.util.updateSegmentBinaryLabelmapFromArray(mask, segmentationNode, segmentId, volumeNode)

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
