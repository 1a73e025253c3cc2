"""Stand-in for Slicer's SegmentEditorEffects: the scripted effect base class."""


class AbstractScriptedSegmentEditorEffect:
    def __init__(self, scriptedEffect):
        self.scriptedEffect = scriptedEffect
        scriptedEffect.effect = self

    def xyToIjk(self, xy, viewWidget, image, parentTransformNode=None):
        return self.scriptedEffect.xyToIjk(xy, viewWidget, image, parentTransformNode)

    def xyToRas(self, xy, viewWidget):
        return self.scriptedEffect.xyToRas(xy, viewWidget)
