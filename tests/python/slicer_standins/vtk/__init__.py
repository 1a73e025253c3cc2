"""Stand-in for `vtk`: event ids and a 4x4 matrix."""

import numpy as np


class vtkCommand:
    LeftButtonPressEvent = 12
    LeftButtonReleaseEvent = 13
    MouseMoveEvent = 26


class vtkMatrix4x4:
    def __init__(self):
        self.values = np.eye(4)

    def DeepCopy(self, values):
        self.values = np.asarray(values, dtype=float).reshape(4, 4).copy()
