"""Stand-in for slicer.ScriptedLoadableModule base classes."""

import os


class _Parent:
    def __init__(self):
        self.hidden = False
        self.title = ""
        self.categories = []
        self.dependencies = []
        self.contributors = []
        self.helpText = ""
        self.acknowledgementText = ""


class ScriptedLoadableModule:
    def __init__(self, parent=None):
        self.parent = parent if parent is not None else _Parent()


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.parent = parent

    def resourcePath(self, filename):
        return os.path.join("Resources", filename)


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        pass


class ScriptedLoadableModuleTest:
    def delayDisplay(self, message, msec=0):
        pass
