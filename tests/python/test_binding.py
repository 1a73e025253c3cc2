"""The ctypes binding against the real built library."""

import ctypes

import pytest

from brainsam import binding


def test_version_and_abi(lib):
    assert lib.abi_version() == binding.ABI_VERSION
    major, minor, patch = (int(x) for x in lib.version().split("."))
    assert lib.raw().brainsam_version_number() == major * 10000 + minor * 100 + patch


def test_runtime_info_reports_libtorch_2_11(lib):
    info = lib.runtime_info()
    assert info["libtorch_version"].startswith("2.11.0")
    assert info["cuda_device_count"] >= 0
    assert info["cpu_threads"] >= 1
    if not info["cuda_available"]:
        assert info["cuda_device_count"] == 0 or info["cuda_device_count"] > 0


def test_null_pointer_raises_with_library_message(lib):
    raw = lib.raw()
    with pytest.raises(binding.BrainSAMError) as caught:
        lib._check(raw.brainsam_runtime_info(None))
    assert caught.value.status == 2
    assert caught.value.status_name == "NULL_POINTER"
    assert "info" in str(caught.value)


def test_status_names_come_from_the_library(lib):
    for number in (0, 1, 2, 10, 11, 99):
        expected = lib.raw().brainsam_status_name(number).decode()
        assert binding.BrainSAMError(number, "x").status_name == expected.removeprefix(
            "BRAINSAM_STATUS_"
        )
    assert binding.BrainSAMError(10, "x").status_name == "BUFFER_TOO_SMALL"
    assert binding.status_name(12345) == "UNKNOWN(12345)"


def test_structures_come_from_the_library(lib):
    structures = lib.structures()
    assert [s.class_id for s in structures] == list(range(1, 13))
    assert structures[0].freesurfer_name == "Left-Thalamus"
    assert structures[0].freesurfer_code == 10 and structures[0].rgb == (0, 118, 14)
    # FreeSurferColorLUT gives the two pallida different blues.
    assert structures[6].rgb == (12, 48, 255) and structures[7].rgb == (13, 48, 255)
    info = binding._StructureInfo()
    info.struct_size = ctypes.sizeof(binding._StructureInfo)
    assert lib.raw().brainsam_get_structure_info(13, ctypes.byref(info)) == 1
    assert "13" in lib.raw().brainsam_last_error_message().decode()


def test_named_library_that_does_not_exist_is_a_clear_error(tmp_path, monkeypatch):
    missing = tmp_path / "nope" / "libbrainsam.so"
    with pytest.raises(binding.BrainSAMError) as caught:
        binding.Library(missing)
    assert str(missing) in str(caught.value)
    monkeypatch.setenv("BRAINSAM_LIBRARY", str(missing))
    with pytest.raises(binding.BrainSAMError) as caught:
        binding.Library()
    assert "BRAINSAM_LIBRARY" in str(caught.value) and str(missing) in str(caught.value)


def test_library_not_found_anywhere_lists_where_it_looked(monkeypatch):
    monkeypatch.delenv("BRAINSAM_LIBRARY", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(binding.BrainSAMError) as caught:
        binding.Library()
    assert "not found" in str(caught.value) and "BRAINSAM_LIBRARY" in str(caught.value)


def test_not_a_library_is_a_clear_error(tmp_path):
    fake = tmp_path / "libbrainsam.so"
    fake.write_text("not an ELF file")
    with pytest.raises(binding.BrainSAMError) as caught:
        binding.Library(fake)
    assert "cannot load" in str(caught.value)
