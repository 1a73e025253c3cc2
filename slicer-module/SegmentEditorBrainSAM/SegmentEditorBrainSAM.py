"""Hidden module that registers the Segment Editor effect "BrainSAM" (point/box prompts,
propagation, automatic segmentation) at Slicer start-up."""

import os

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest


class SegmentEditorBrainSAM(ScriptedLoadableModule):
    """Registers the effect; has no UI of its own."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "SegmentEditorBrainSAM"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["Segmentations", "BrainSAM"]
        self.parent.contributors = ["BrainSAM developers"]
        self.parent.hidden = True
        self.parent.helpText = "Segment Editor effect 'BrainSAM': SAM + LoRA prompts for 12 subcortical structures."
        self.parent.acknowledgementText = (
            "BrainSAM adapts Segment Anything (Kirillov et al., Meta AI, Apache-2.0) with LoRA for "
            "subcortical segmentation. Built on 3D Slicer's Segment Editor (slicer.org)."
        )
        slicer.app.connect("startupCompleted()", self.registerEditorEffect)

    def registerEditorEffect(self):
        """Create the scripted effect from SegmentEditorBrainSAMLib/SegmentEditorEffect.py."""
        import qSlicerSegmentationsEditorEffectsPythonQt as qSlicerSegmentationsEditorEffects

        instance = qSlicerSegmentationsEditorEffects.qSlicerSegmentEditorScriptedEffect(None)
        effectFilename = os.path.join(
            os.path.dirname(__file__), self.__class__.__name__ + "Lib", "SegmentEditorEffect.py"
        )
        instance.setPythonSource(effectFilename.replace("\\", "/"))
        instance.self().register()


class SegmentEditorBrainSAMTest(ScriptedLoadableModuleTest):
    """Checks inside Slicer that the effect is registered with the Segment Editor."""

    def runTest(self):
        slicer.mrmlScene.Clear()
        self.test_EffectRegistered()

    def test_EffectRegistered(self):
        editorWidget = slicer.qMRMLSegmentEditorWidget()
        editorWidget.setMRMLScene(slicer.mrmlScene)
        parameterNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        editorWidget.setMRMLSegmentEditorNode(parameterNode)
        self.assertIsNotNone(editorWidget.effectByName("BrainSAM"))
        self.delayDisplay("Test passed")
