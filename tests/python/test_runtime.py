"""libtorch discovery and checks of brainsam._runtime (what a wheel install does before
loading libbrainsam), on fake torch folders: nothing here loads a library. The real
installs are tested by tests/package_test.py (scripts/test stage `package`)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from brainsam import _runtime
from brainsam import api, binding


def fake_torch(folder: Path, version: str = "2.11.0+cu130", cuda: bool = True,
               version_file: str = "version.py") -> Path:
    (folder / "lib").mkdir(parents=True)
    (folder / "lib" / "libtorch_cpu.so").write_bytes(b"")
    if cuda:
        (folder / "lib" / "libtorch_cuda.so").write_bytes(b"")
    if version_file == "version.py":
        (folder / "version.py").write_text(
            f"from typing import Optional\n__version__ = '{version}'\ndebug = False\n")
    elif version_file == "build-version":
        (folder / "build-version").write_text(version + "\n")
    return folder


@pytest.fixture
def wheel_build(monkeypatch):
    """Pretend to be a wheel install whose library links libtorch_cuda."""
    monkeypatch.setattr(_runtime, "build_info",
                        lambda: {"libtorch_version": "2.11.0+cu130", "links_torch_cuda": True})


def test_version_read_from_torch_package_and_libtorch(tmp_path):
    package = fake_torch(tmp_path / "torch", "2.11.0+cu130")
    libtorch = fake_torch(tmp_path / "libtorch", "2.11.0+cpu", version_file="build-version")
    assert _runtime.torch_version(package / "lib") == "2.11.0+cu130"
    assert _runtime.torch_version(libtorch / "lib") == "2.11.0+cpu"
    bare = fake_torch(tmp_path / "bare", version_file="none")
    assert _runtime.torch_version(bare / "lib") is None


@pytest.mark.parametrize("form", ["package", "lib"])
def test_brainsam_torch_dir_accepts_the_folder_or_its_lib(tmp_path, monkeypatch, wheel_build, form):
    torch = fake_torch(tmp_path / "torch")
    monkeypatch.setenv("BRAINSAM_TORCH_DIR", str(torch if form == "package" else torch / "lib"))
    assert _runtime.find_torch() == torch / "lib"


def test_wrong_version_names_both_versions_and_the_fix(tmp_path, monkeypatch, wheel_build):
    monkeypatch.setenv("BRAINSAM_TORCH_DIR", str(fake_torch(tmp_path / "t", "2.10.0+cu128")))
    with pytest.raises(_runtime.TorchNotFound) as error:
        _runtime.find_torch()
    message = str(error.value)
    assert "needs libtorch 2.11.0" in message and "has torch 2.10.0+cu128" in message
    assert "torch==2.11.0" in message


def test_cpu_only_torch_is_refused_for_a_cuda_linked_build(tmp_path, monkeypatch, wheel_build):
    monkeypatch.setenv("BRAINSAM_TORCH_DIR", str(fake_torch(tmp_path / "t", "2.11.0+cpu", cuda=False)))
    with pytest.raises(_runtime.TorchNotFound, match="CPU-only torch 2.11.0"):
        _runtime.find_torch()


def test_folder_without_libtorch_or_version(tmp_path, monkeypatch, wheel_build):
    monkeypatch.setenv("BRAINSAM_TORCH_DIR", str(tmp_path))
    with pytest.raises(_runtime.TorchNotFound, match="holds no libtorch"):
        _runtime.find_torch()
    monkeypatch.setenv("BRAINSAM_TORCH_DIR", str(fake_torch(tmp_path / "t", version_file="none")))
    with pytest.raises(_runtime.TorchNotFound, match="cannot tell the version"):
        _runtime.find_torch()


def test_no_torch_anywhere_says_what_to_install(tmp_path, monkeypatch, wheel_build):
    monkeypatch.delenv("BRAINSAM_TORCH_DIR", raising=False)
    monkeypatch.setattr(_runtime, "_torch_of_this_python", lambda: None)
    monkeypatch.setenv("BRAINSAM_PYTHON", str(tmp_path / "no-such-python"))
    with pytest.raises(_runtime.TorchNotFound) as error:
        _runtime.find_torch()
    message = str(error.value)
    assert "found none" in message and "BRAINSAM_TORCH_DIR" in message
    if sys.version_info >= (3, 10):
        assert f"{sys.executable} -m pip install torch==2.11.0" in message
    else:
        assert "PyPI has no torch 2.11.0 for Python 3.9" in message


def test_torch_of_another_python_is_found(tmp_path, monkeypatch, wheel_build):
    torch = fake_torch(tmp_path / "site" / "torch")
    (torch / "__init__.py").write_text("raise ImportError('never imported')\n")
    other = tmp_path / "other-python"
    other.write_text(f"#!/bin/sh\nPYTHONPATH={tmp_path / 'site'} exec {sys.executable} \"$@\"\n")
    other.chmod(0o755)
    monkeypatch.delenv("BRAINSAM_TORCH_DIR", raising=False)
    monkeypatch.setattr(_runtime, "_torch_of_this_python", lambda: None)
    monkeypatch.setenv("BRAINSAM_PYTHON", str(other))
    assert _runtime.find_torch() == torch / "lib"


def test_library_load_reports_a_wrong_torch_as_brainsam_error(tmp_path, monkeypatch, library_path):
    """BRAINSAM_TORCH_DIR is honoured for any library: a wrong one stops the load with a
    BrainSAMError naming the version, before the loader sees anything."""
    monkeypatch.setenv("BRAINSAM_TORCH_DIR", str(fake_torch(tmp_path / "t", "2.9.1+cpu")))
    with pytest.raises(binding.BrainSAMError, match="has torch 2.9.1"):
        binding.Library(library_path)


def test_segment_rejects_bad_arguments_before_loading_anything():
    with pytest.raises(binding.BrainSAMError, match="3-D array"):
        api.segment(np.zeros((4, 4)))
    with pytest.raises(binding.BrainSAMError, match="4x4"):
        api.segment(np.zeros((4, 4, 4)), affine=np.eye(3))
    with pytest.raises(binding.BrainSAMError, match="does not exist"):
        api.segment("/nonexistent/t1.nii.gz")


def test_structure_table_matches_the_class_ids():
    assert sorted(api.STRUCTURES) == list(range(1, 13))
    assert api.STRUCTURES[1] == "Left-Thalamus" and api.STRUCTURES[12] == "Right-Amygdala"


def test_build_info_is_absent_in_the_checkout():
    # The checkout's package has no _build.json: the developer library finds libtorch
    # through its own rpath and nothing is preloaded.
    assert _runtime.build_info() is None
    assert _runtime.bundled_library() is None
