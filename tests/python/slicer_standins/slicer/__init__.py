"""Stand-in for the `slicer` package: an app, a scene holding nodes by name, `util`, the
oriented image data class and the effect enum BrainSAM uses."""

from . import util  # noqa: F401


class _App:
    def __init__(self):
        self.connections = []

    def connect(self, signal, slot):
        self.connections.append((signal, slot))

    def processEvents(self):
        import qt

        qt.run_timers()


class _Scene:
    def __init__(self):
        self.nodes = []

    def Clear(self, *args):
        self.nodes = []

    def GetFirstNodeByName(self, name):
        return next((n for n in self.nodes if n.GetName() == name), None)

    def AddNewNodeByClass(self, className, name=""):
        from . import mrml

        node = mrml.new_node(className, name)
        self.nodes.append(node)
        return node

    def RemoveNode(self, node):
        self.nodes.remove(node)


app = _App()
mrmlScene = _Scene()


class vtkOrientedImageData:
    """Holds dimensions, image-to-world matrix and scalars (a flat numpy array)."""

    def __init__(self):
        self.dims = (0, 0, 0)
        self.matrix = None
        self.scalars = None

    def SetDimensions(self, i, j, k):
        self.dims = (i, j, k)

    def SetImageToWorldMatrix(self, matrix):
        self.matrix = matrix.values.copy()

    def GetPointData(self):
        image = self

        class _PointData:
            def SetScalars(self, scalars):
                image.scalars = scalars

        return _PointData()

    def array(self):
        """The scalars as [k, j, i]."""
        i, j, k = self.dims
        return self.scalars.reshape(k, j, i)


class qSlicerSegmentEditorAbstractEffect:
    ModificationModeSet = 0
    ModificationModeAdd = 1
    ModificationModeRemove = 2
    ModificationModeRemoveAll = 3
