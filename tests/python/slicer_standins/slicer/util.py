"""Stand-in for slicer.util: records what BrainSAM writes, shows and installs."""

import numpy as np

errors = []  # messages given to errorDisplay (modal: BrainSAM should not use it)
status = []  # messages given to showStatusMessage (the status bar)
written = []  # (segmentation node, segment id, mask copy, reference volume)
volumes = {}  # volume node -> numpy array [k, j, i]
confirm_answers = []  # answers confirmOkCancelDisplay gives (popped), default False
confirmations = []  # texts asked
pip_installs = []  # what pip_install was given
pip_behaviour = {"effect": None}  # callable run by pip_install (e.g. make the package importable)


def errorDisplay(text, **kwargs):
    errors.append(text)


def showStatusMessage(message, duration=0):
    status.append(message)


def confirmOkCancelDisplay(text, windowTitle=None, parent=None, **kwargs):
    confirmations.append(text)
    return confirm_answers.pop(0) if confirm_answers else False


def pip_install(requirements):
    pip_installs.append(requirements)
    if pip_behaviour["effect"] is not None:
        pip_behaviour["effect"](requirements)


def arrayFromVolume(volumeNode):
    return volumes[volumeNode]


def arrayFromVTKMatrix(matrix):
    return np.array(matrix.values, copy=True)


def vtkMatrixFromArray(narray):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    matrix.DeepCopy(np.asarray(narray, dtype=float))
    return matrix


def updateSegmentBinaryLabelmapFromArray(narray, segmentationNode, segmentId, referenceVolumeNode=None):
    written.append((segmentationNode, segmentId, np.array(narray, copy=True), referenceVolumeNode))
    segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
    if segment is not None and hasattr(segment, "mask"):
        segment.mask = np.array(narray, dtype=bool)
