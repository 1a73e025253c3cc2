"""Stand-in MRML nodes the effect creates: markups (points and ROI) with a display node."""


class _Display:
    def __init__(self):
        self.colour = self.selected_colour = None

    def SetColor(self, *rgb):
        self.colour = rgb

    def SetSelectedColor(self, *rgb):
        self.selected_colour = rgb


class MarkupsNode:
    def __init__(self, className, name):
        self.className, self.name = className, name
        self.points = []  # [position, label, description]
        self.display = None
        self.locked = False
        self.center = self.size = self.object_to_node = None

    def GetName(self):
        return self.name

    def GetClassName(self):
        return self.className

    def CreateDefaultDisplayNodes(self):
        self.display = _Display()

    def GetDisplayNode(self):
        return self.display

    def SetLocked(self, locked):
        self.locked = bool(locked)

    def AddControlPoint(self, vector, label=""):
        self.points.append([tuple(vector.values), label, ""])
        return len(self.points) - 1

    def GetNumberOfControlPoints(self):
        return len(self.points)

    def SetNthControlPointLabel(self, index, label):
        self.points[index][1] = label

    def SetNthControlPointDescription(self, index, text):
        self.points[index][2] = text

    def GetNthControlPointDescription(self, index):
        return self.points[index][2]

    def RemoveNthControlPoint(self, index):
        del self.points[index]

    # ROI
    def SetAndObserveObjectToNodeMatrix(self, matrix):
        self.object_to_node = matrix.values.copy()

    def SetCenter(self, *xyz):
        self.center = tuple(float(c) for c in xyz)

    def SetSize(self, *xyz):
        self.size = tuple(float(c) for c in xyz)


def new_node(className, name):
    if className not in ("vtkMRMLMarkupsFiducialNode", "vtkMRMLMarkupsROINode"):
        raise ValueError(f"stand-in scene cannot create {className}")
    return MarkupsNode(className, name)
