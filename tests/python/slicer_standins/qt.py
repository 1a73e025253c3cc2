"""Stand-in for Slicer's `qt` (PythonQt): what BrainSAM touches, with signals that fire
like Qt's (a combo box emits currentIndexChanged when its index changes) and a QTimer
driven by the test's event loop (tests call `run_timers()`, or the GIL model does)."""


class QObject:
    def __init__(self, *args, **kwargs):
        self._slots = {}

    def connect(self, signal, slot):
        self._slots.setdefault(signal, []).append(slot)

    def emit(self, signal, *args):
        for slot in list(self._slots.get(signal, [])):
            slot(*args)


class QTimer(QObject):
    """Active timers are in `QTimer.active_timers`; the stand-in event loop fires them."""

    active_timers = []

    def __init__(self):
        super().__init__()
        self.interval = 0

    def setInterval(self, milliseconds):
        self.interval = milliseconds

    def start(self):
        if self not in QTimer.active_timers:
            QTimer.active_timers.append(self)

    def stop(self):
        if self in QTimer.active_timers:
            QTimer.active_timers.remove(self)

    def isActive(self):
        return self in QTimer.active_timers


def run_timers():
    """One turn of the event loop: fire every active timer once."""
    for timer in list(QTimer.active_timers):
        timer.emit("timeout()")


class QSettings:
    """Process-wide dict store, like one Slicer settings file."""

    store = {}

    def value(self, key, default=None):
        return self.store.get(key, default)

    def setValue(self, key, value):
        self.store[key] = value


class QWidget(QObject):
    def __init__(self, *args):
        super().__init__()
        self.enabled = True
        self.text = args[0] if args and isinstance(args[0], str) else ""
        self.toolTip = ""


class QPushButton(QWidget):
    pass


class QLabel(QWidget):
    wordWrap = False


class QProgressBar(QWidget):
    value = 0
    maximum = 100


class QSpinBox(QWidget):
    minimum = 0
    maximum = 99
    value = 0


class QComboBox(QWidget):
    def __init__(self, *args):
        super().__init__(*args)
        self.items = []
        self.currentIndex = -1

    def addItem(self, text, data=None):
        self.items.append((text, data))
        if self.currentIndex < 0:
            self.setCurrentIndex(0)

    def setCurrentIndex(self, index):
        if index != self.currentIndex:
            self.currentIndex = index
            self.emit("currentIndexChanged(int)", index)

    @property
    def currentText(self):
        return self.items[self.currentIndex][0] if self.currentIndex >= 0 else ""


class QHBoxLayout(QObject):
    def __init__(self):
        super().__init__()
        self.widgets = []

    def addWidget(self, widget):
        self.widgets.append(widget)


class QIcon:
    def __init__(self, path=""):
        self.path = path
