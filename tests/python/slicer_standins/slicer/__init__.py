"""Stand-in for the `slicer` package: an app object, a scene placeholder and `util`."""

from . import util  # noqa: F401


class _App:
    def __init__(self):
        self.connections = []

    def connect(self, signal, slot):
        self.connections.append((signal, slot))

    def processEvents(self):
        pass


app = _App()
mrmlScene = None
