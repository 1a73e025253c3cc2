"""Stand-in for slicer.util: records what BrainSAM writes and shows."""

import numpy as np

errors = []  # messages given to errorDisplay
written = []  # (segmentation node, segment id, mask copy, reference volume)
volumes = {}  # volume node -> numpy array [k, j, i]


class VTKObservationMixin:
    def __init__(self):
        self.observations = []

    def removeObservers(self, *args):
        self.observations = []


def errorDisplay(text, **kwargs):
    errors.append(text)


def arrayFromVolume(volumeNode):
    return volumes[volumeNode]


def arrayFromVTKMatrix(matrix):
    return np.array(matrix.values, copy=True)


def updateSegmentBinaryLabelmapFromArray(narray, segmentationNode, segmentId, referenceVolumeNode=None):
    written.append((segmentationNode, segmentId, np.array(narray, copy=True), referenceVolumeNode))
