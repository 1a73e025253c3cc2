"""Stand-in for `vtk`: event ids, constants, a 4x4 matrix and a 3-vector."""

import numpy as np

VTK_UNSIGNED_CHAR = 3


class vtkCommand:
    LeftButtonPressEvent = 12
    LeftButtonReleaseEvent = 13
    MouseMoveEvent = 26


class vtkMatrix4x4:
    def __init__(self):
        self.values = np.eye(4)

    def DeepCopy(self, values):
        self.values = np.asarray(getattr(values, "values", values), dtype=float).reshape(4, 4).copy()


class vtkVector3d:
    def __init__(self, x, y, z):
        self.values = (float(x), float(y), float(z))
