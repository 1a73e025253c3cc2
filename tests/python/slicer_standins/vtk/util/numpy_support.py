"""Stand-in for vtk.util.numpy_support: a 'VTK array' is the numpy array itself."""

import numpy as np


def numpy_to_vtk(num_array, deep=0, array_type=None):
    return np.array(num_array, copy=bool(deep))
