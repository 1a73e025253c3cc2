"""Stand-in for Slicer's SegmentEditorEffects: the scripted effect base class. Like
Slicer's, xyToRas maps a slice-view position through the view's XYToRAS (here: the slice
node's SliceToRAS, one pixel = one mm)."""

import numpy as np


class AbstractScriptedSegmentEditorEffect:
    def __init__(self, scriptedEffect):
        self.scriptedEffect = scriptedEffect
        scriptedEffect.effect = self

    def xyToRas(self, xy, viewWidget):
        sliceToRas = viewWidget.mrmlSliceNode().GetSliceToRAS().values
        return (sliceToRas @ np.array([xy[0], xy[1], 0.0, 1.0]))[:3]
