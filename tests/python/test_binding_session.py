"""The binding's model/session part against the real library.

Skips (with the reason) only when the loaded library has no `brainsam_session_create` yet,
and, for the tests that need weights, when BRAINSAM_TEST_CHECKPOINT (a model checkpoint
file) is unset. Everything else runs for real through the C API.
"""

import ctypes
import os
import threading

import numpy as np
import pytest

from brainsam import binding
from brainsam.binding import BrainSAMError

INVALID_ARGUMENT, NULL_POINTER, IO_ERROR, INVALID_STATE, CANCELLED, BUFFER_TOO_SMALL = 1, 2, 3, 6, 8, 10

# FreeSurfer-conformed orientation (LIA): i -> left, j -> inferior, k -> anterior.
LIA = np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])


@pytest.fixture(scope="module")
def session_lib(lib):
    if not lib.has_sessions:
        pytest.skip(
            f"{lib.path} has no brainsam_session_create: the model/session C API has not "
            "landed in this library yet"
        )
    return lib


@pytest.fixture(scope="module")
def model(session_lib):
    checkpoint = os.environ.get("BRAINSAM_TEST_CHECKPOINT")
    if not checkpoint:
        pytest.skip("skipped: BRAINSAM_TEST_CHECKPOINT (a BrainSAM model checkpoint) not set")
    with session_lib.load_model(checkpoint=checkpoint, device="cpu") as loaded:
        yield loaded


#: Test volume shape [k, j, i] and voxel size (i, j, k) in mm: a head-sized field of view.
SHAPE = (44, 48, 40)
SPACING = (3.6, 3.8, 3.6)


def synthetic_volume(shape=SHAPE):
    """A coarse T1-like head [k, j, i] (with ijk_to_ras's 3.6-3.8 mm voxels, a head-sized
    ellipsoid, as the library's region-of-interest finder needs) with darker deep blobs."""
    k, j, i = np.indices(shape, dtype=np.float32)
    centre = [(n - 1) / 2 for n in shape]
    radius = ((k - centre[0]) / (shape[0] / 2)) ** 2 + ((j - centre[1]) / (shape[1] / 2)) ** 2
    radius += ((i - centre[2]) / (shape[2] / 2)) ** 2
    volume = np.where(radius < 0.9, 110.0, 5.0).astype(np.float32)
    for di in (-5, 5):
        blob = (k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2] - di) ** 2 < 9
        volume[blob] = 70.0
    return volume


def ijk_to_ras(spacing=SPACING, direction=np.eye(3), origin=(-70.0, -90.0, -80.0)):
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(direction) * np.asarray(spacing)[None, :]
    matrix[:3, 3] = origin
    return matrix


@pytest.fixture
def session(model):
    with model.session() as created:
        yield created


@pytest.fixture
def loaded_session(session):
    session.set_volume(synthetic_volume(), ijk_to_ras())
    return session


# --- without weights: loading errors -------------------------------------------------------


def test_missing_checkpoint_is_an_io_error_naming_the_file(session_lib, tmp_path):
    missing = tmp_path / "no-such-model.safetensors"
    with pytest.raises(BrainSAMError) as caught:
        session_lib.load_model(checkpoint=missing, device="cpu")
    assert caught.value.status == IO_ERROR
    assert str(missing) in str(caught.value)


def test_unknown_device_is_rejected_by_binding_and_library(session_lib):
    with pytest.raises(BrainSAMError) as caught:
        session_lib.load_model(device="tpu")
    assert caught.value.status == INVALID_ARGUMENT and "tpu" in str(caught.value)
    options = binding._ModelOptions(ctypes.sizeof(binding._ModelOptions), None, None, 7)
    handle = ctypes.c_void_p()
    status = session_lib.raw().brainsam_model_load(ctypes.byref(options), ctypes.byref(handle))
    assert status == INVALID_ARGUMENT and not handle.value
    assert "7" in session_lib.raw().brainsam_last_error_message().decode()


def test_device_numbers_and_precisions(session_lib):
    # Names parse in the library, as on the command line (case and blanks ignored).
    assert session_lib.parse_device("cuda:2") == (binding.DEVICES["cuda"], 2)
    assert session_lib.parse_device(" CPU") == (binding.DEVICES["cpu"], 0)
    assert session_lib.parse_precision("half") == binding.PRECISIONS["fp16"]
    for bad in ("cuda:", "cuda:x", "gpu:1"):
        with pytest.raises(BrainSAMError) as caught:
            session_lib.load_model(device=bad)
        assert caught.value.status == INVALID_ARGUMENT and "cuda:N" in str(caught.value)
    with pytest.raises(BrainSAMError) as caught:
        session_lib.load_model(device="cpu", precision="int8")
    assert caught.value.status == INVALID_ARGUMENT and "int8" in str(caught.value)
    # A CUDA device number past the last device is refused by the library, naming it.
    devices = session_lib.runtime_info()["cuda_device_count"]
    with pytest.raises(BrainSAMError) as caught:
        session_lib.load_model(device=f"cuda:{devices + 1}")
    assert f"cuda:{devices + 1}" in str(caught.value)
    # The library checks the precision code itself too.
    options = binding._ModelOptions(ctypes.sizeof(binding._ModelOptions), None, None, 1, 0, 9)
    handle = ctypes.c_void_p()
    status = session_lib.raw().brainsam_model_load(ctypes.byref(options), ctypes.byref(handle))
    assert status == INVALID_ARGUMENT and not handle.value
    assert "precision 9" in session_lib.raw().brainsam_last_error_message().decode()


def test_bf16_model_segments_like_fp32(session_lib, model):
    checkpoint = os.environ["BRAINSAM_TEST_CHECKPOINT"]
    with session_lib.load_model(checkpoint=checkpoint, device="cpu", precision="bf16") as bf16:
        assert bf16.precision == "bf16"
        results = []
        for loaded in (model, bf16):
            # One grid: averaging this random model's eight views leaves many voxels at
            # near-ties that bf16 rounding tips either way (the trained model's bf16 masks
            # with every view are compared in tests/precision.rs).
            with loaded.session(shift_averaging=False) as session:
                session.set_volume(synthetic_volume(), ijk_to_ras())
                session.segment_all()
                results.append(session.copy_labels())
    agreement = np.mean(results[0] == results[1])
    assert agreement > 0.99, agreement


def test_session_options_reach_the_library(model):
    totals = {}
    for mirror in (False, True):
        for shift in (False, True):
            with model.session(
                batch_size=3, mirror_averaging=mirror, shift_averaging=shift, embedding_cache="host"
            ) as session:
                session.set_volume(synthetic_volume(), ijk_to_ras())
                calls = []
                session.segment_all(lambda done, total: calls.append((done, total)))
                totals[mirror, shift] = calls[-1]
    slices = totals[False, False][1]
    assert totals[False, False] == (slices, slices)
    assert totals[True, False] == (2 * slices, 2 * slices), "mirror averaging encodes twice"
    assert totals[False, True] == (4 * slices, 4 * slices), "shift averaging: four grids"
    assert totals[True, True] == (8 * slices, 8 * slices), "both: eight views"
    with pytest.raises(BrainSAMError) as caught:
        model.session(embedding_cache="gpu")
    assert caught.value.status == INVALID_ARGUMENT and "gpu" in str(caught.value)
    with pytest.raises(BrainSAMError):
        model.session(batch_size=-1)
    # The library checks the cache code itself too.
    options = binding._SessionOptions(ctypes.sizeof(binding._SessionOptions), 0, 0, 0, 7)
    handle = ctypes.c_void_p()
    raw = model.library.raw()
    status = raw.brainsam_session_create_with_options(
        model.handle(), ctypes.byref(options), ctypes.byref(handle)
    )
    assert status == INVALID_ARGUMENT and not handle.value
    assert "embedding_cache 7" in raw.brainsam_last_error_message().decode()


def test_null_pointers_are_reported_not_crashed(session_lib):
    raw = session_lib.raw()
    handle = ctypes.c_void_p()
    assert raw.brainsam_session_create(None, ctypes.byref(handle)) == NULL_POINTER
    assert raw.brainsam_model_load(None, ctypes.byref(handle)) == NULL_POINTER
    raw.brainsam_model_free(None)  # documented as fine
    raw.brainsam_session_free(None)


def test_log_callback_can_be_set_and_cleared(session_lib):
    received = []
    session_lib.set_log_callback(lambda level, message: received.append((level, message)))
    try:
        with pytest.raises(BrainSAMError):
            session_lib.load_model(checkpoint="/nonexistent/model.pt", device="cpu")
    finally:
        session_lib.set_log_callback(None)
    for level, message in received:
        assert level in binding.LOG_LEVELS and isinstance(message, str)


# --- with weights -------------------------------------------------------------------------


def test_segment_all_fills_labels_and_reports_progress(loaded_session):
    calls = []
    loaded_session.segment_all(lambda done, total: calls.append((done, total)))
    labels = loaded_session.copy_labels()
    assert labels.shape == SHAPE and labels.dtype == np.uint8
    assert labels.max() <= 12
    assert calls, "segment_all never reported progress"
    dones = [done for done, _ in calls]
    assert dones == sorted(dones)
    assert calls[-1][0] == calls[-1][1] > 0


def test_structure_stats_match_the_label_volume(loaded_session):
    loaded_session.segment_all()
    labels = loaded_session.copy_labels()
    voxel_mm3 = float(np.prod(SPACING))
    for structure in binding.STRUCTURE_IDS:
        volume, confidence = loaded_session.structure_stats(structure)
        assert volume == pytest.approx(np.count_nonzero(labels == structure) * voxel_mm3, rel=1e-6)
        assert 0.0 <= confidence <= 1.0


def test_structure_details_count_the_voxels_of_the_label_volume(loaded_session):
    loaded_session.segment_all()
    labels = loaded_session.copy_labels()
    for structure in binding.STRUCTURE_IDS:
        details = loaded_session.structure_details(structure)
        assert details["voxels"] == np.count_nonzero(labels == structure)
        volume, confidence = loaded_session.structure_stats(structure)
        assert (details["volume_mm3"], details["confidence"]) == (volume, confidence)
        assert details["qc"] == loaded_session.structure_qc(structure)


def test_structure_qc_flags_implausible_structures(loaded_session):
    loaded_session.segment_all()
    # The documented plausible volumes (README, Reliability), per left/right pair.
    ranges = [(2750, 21050), (1200, 9550), (1630, 14650), (410, 5640), (715, 10530), (265, 4700)]
    every = 0
    for structure in binding.STRUCTURE_IDS:
        flags = loaded_session.structure_qc(structure)
        volume, confidence = loaded_session.structure_stats(structure)
        low, high = ranges[(structure - 1) // 2]
        assert bool(flags & binding.QC_VOLUME_LOW) == (volume < low)
        assert bool(flags & binding.QC_VOLUME_HIGH) == (volume > high)
        assert bool(flags & binding.QC_LOW_CONFIDENCE) == (volume > 0 and confidence < 0.4)
        every |= flags
    assert loaded_session.structure_qc(0) == every
    with pytest.raises(BrainSAMError) as caught:
        loaded_session.structure_qc(13)
    assert caught.value.status == INVALID_ARGUMENT and "13" in str(caught.value)


def test_a_short_buffer_is_refused_through_data_len(session):
    data = np.zeros((4, 4, 4), np.float32)
    desc = binding._VolumeDesc()
    desc.struct_size = ctypes.sizeof(desc)
    desc.data = data.ctypes.data_as(ctypes.c_void_p)
    desc.data_len = data.nbytes
    desc.dtype = binding.DTYPES[np.dtype(np.float32)]
    desc.dims[:] = [4, 4, 8]  # twice what the buffer holds
    desc.spacing[:] = [1, 1, 1]
    desc.direction[:] = list(np.eye(3).ravel())
    desc.coordinates = binding.COORDINATES_RAS
    status = session.library.raw().brainsam_session_set_volume(session._handle, ctypes.byref(desc))
    assert status == 10  # BUFFER_TOO_SMALL
    assert "data_len is 256 bytes" in session.library.raw().brainsam_last_error_message().decode()


def test_cancel_from_progress_then_session_still_works(loaded_session):
    with pytest.raises(BrainSAMError) as caught:
        loaded_session.segment_all(lambda done, total: True)
    assert caught.value.status == CANCELLED
    loaded_session.segment_all()
    assert loaded_session.copy_labels().max() <= 12


def test_exception_in_progress_cancels_and_is_reraised(loaded_session):
    def failing(done, total):
        raise ValueError("progress bar gone")

    with pytest.raises(ValueError, match="progress bar gone"):
        loaded_session.segment_all(failing)


def test_second_thread_during_a_call_gets_a_clear_error(loaded_session):
    errors = []

    def progress(done, total):
        if not errors:
            worker = threading.Thread(target=lambda: _capture(errors, loaded_session.slicing_axis))
            worker.start()
            worker.join()

    loaded_session.segment_all(progress)
    assert errors and isinstance(errors[0], BrainSAMError)
    assert errors[0].status == INVALID_STATE and "another thread" in str(errors[0])


def _capture(errors, call):
    try:
        call()
        errors.append(None)
    except BrainSAMError as error:
        errors.append(error)


def test_slicing_axis_follows_the_anatomy(session):
    # Identity RAS: j runs posterior -> anterior, so coronal slices are along j.
    session.set_volume(synthetic_volume(), ijk_to_ras())
    assert session.slicing_axis() == 1
    assert session.slice_count() == SHAPE[1]
    # LIA (FreeSurfer conformed): k runs anterior.
    session.set_volume(synthetic_volume(), ijk_to_ras(direction=LIA))
    assert session.slicing_axis() == 2
    assert session.slice_count() == SHAPE[0]


def test_point_prompt_updates_only_its_slice(loaded_session):
    loaded_session.segment_all()
    before = loaded_session.copy_labels()
    axis = loaded_session.slicing_axis()
    point = [SHAPE[2] / 2, SHAPE[1] / 2, SHAPE[0] / 2]  # centre (i, j, k)
    slice_index = int(point[axis])
    # The library says which slice each prompt landed on.
    assert loaded_session.add_point(5, point, positive=True) == slice_index
    negative = list(point)
    negative[(axis + 1) % 3] -= 6
    assert loaded_session.add_point(5, negative, positive=False) == slice_index
    loaded_session.segment_structure(5, slice_index)
    after = loaded_session.copy_labels()
    changed = np.argwhere(before != after)  # rows of (k, j, i)
    assert np.all(changed[:, 2 - axis] == slice_index)


def test_box_prompt_and_clear_prompts(loaded_session):
    loaded_session.segment_all()
    axis = loaded_session.slicing_axis()
    a = [SHAPE[2] / 2 - 4, SHAPE[1] / 2 - 4, SHAPE[0] / 2 - 4]
    b = [SHAPE[2] / 2 + 4, SHAPE[1] / 2 + 4, SHAPE[0] / 2 + 4]
    b[axis] = a[axis]  # same coronal slice
    assert loaded_session.add_box(3, a, b) == int(a[axis])
    before = loaded_session.copy_labels()
    loaded_session.segment_structure(3, int(a[axis]))
    after = loaded_session.copy_labels()
    changed = np.argwhere(before != after)
    assert np.all(changed[:, 2 - axis] == int(a[axis]))
    loaded_session.clear_prompts(3, int(a[axis]))
    loaded_session.clear_prompts(3)


def test_set_volume_accepts_non_contiguous_and_foreign_byte_order(session):
    volume = synthetic_volume()
    session.set_volume(np.asfortranarray(volume), ijk_to_ras())
    session.set_volume(volume.astype(">f4"), ijk_to_ras())
    session.set_volume(volume[::1, ::1, ::1].astype(np.int16), ijk_to_ras())
    assert session.shape == volume.shape


# --- errors with weights -------------------------------------------------------------------


def test_bad_dims_are_rejected(session):
    with pytest.raises(BrainSAMError) as caught:
        session.set_volume(np.zeros((0, 8, 8), np.float32), ijk_to_ras())
    assert caught.value.status == INVALID_ARGUMENT
    with pytest.raises(BrainSAMError) as caught:
        session.set_volume(np.zeros((8, 8), np.float32), ijk_to_ras())
    assert caught.value.status == INVALID_ARGUMENT and "3-D" in str(caught.value)


def test_nan_or_zero_spacing_is_rejected_by_the_library(session):
    volume = synthetic_volume()
    with pytest.raises(BrainSAMError) as caught:
        session.set_volume_geometry(volume, [np.nan, 1, 1], [0, 0, 0], np.eye(3))
    assert caught.value.status == INVALID_ARGUMENT and "spacing" in str(caught.value).lower()
    matrix = ijk_to_ras()
    matrix[:3, 1] = 0.0
    with pytest.raises(BrainSAMError) as caught:
        session.set_volume(volume, matrix)
    assert caught.value.status == INVALID_ARGUMENT and "spacing" in str(caught.value).lower()
    with pytest.raises(BrainSAMError) as caught:
        session.set_volume(volume, np.eye(3))
    assert caught.value.status == INVALID_ARGUMENT and "4x4" in str(caught.value)


def test_wrong_dtype_is_rejected_by_binding_and_library(session):
    with pytest.raises(BrainSAMError) as caught:
        session.set_volume(np.zeros((4, 4, 4), np.int64), ijk_to_ras())
    assert caught.value.status == INVALID_ARGUMENT and "int64" in str(caught.value)
    data = np.zeros((4, 4, 4), np.float32)
    desc = binding._VolumeDesc()
    desc.struct_size = ctypes.sizeof(desc)
    desc.data = data.ctypes.data_as(ctypes.c_void_p)
    desc.dtype = 42
    desc.dims[:] = [4, 4, 4]
    desc.spacing[:] = [1, 1, 1]
    desc.direction[:] = list(np.eye(3).ravel())
    desc.coordinates = binding.COORDINATES_RAS
    status = session.library.raw().brainsam_session_set_volume(session._handle, ctypes.byref(desc))
    assert status == INVALID_ARGUMENT
    assert "42" in session.library.raw().brainsam_last_error_message().decode()


def test_prompts_outside_the_volume_or_structure_range_are_rejected(loaded_session):
    axis = loaded_session.slicing_axis()
    for structure, point in [(1, [-5.0, 3.0, 3.0]), (1, [3.0, 3.0, 500.0]), (0, [3.0, 3.0, 3.0]),
                             (13, [3.0, 3.0, 3.0]), (1, [np.nan, 3.0, 3.0])]:
        with pytest.raises(BrainSAMError) as caught:
            loaded_session.add_point(structure, point)
        assert caught.value.status == INVALID_ARGUMENT, (structure, point)
    a, b = [2.0, 2.0, 2.0], [6.0, 6.0, 6.0]
    b[axis] = a[axis] + 3  # corners on different coronal slices
    with pytest.raises(BrainSAMError) as caught:
        loaded_session.add_box(1, a, b)
    assert caught.value.status == INVALID_ARGUMENT
    with pytest.raises(BrainSAMError) as caught:
        loaded_session.segment_structure(1, 10_000)
    assert caught.value.status == INVALID_ARGUMENT
    with pytest.raises(BrainSAMError) as caught:
        loaded_session.structure_stats(13)
    assert caught.value.status == INVALID_ARGUMENT


def test_calls_in_the_wrong_order_are_invalid_state(session):
    raw = session.library.raw()
    with pytest.raises(BrainSAMError) as caught:
        session.segment_all()
    assert caught.value.status == INVALID_STATE
    with pytest.raises(BrainSAMError) as caught:
        session.add_point(1, [1.0, 1.0, 1.0])
    assert caught.value.status == INVALID_STATE
    axis = ctypes.c_uint32()
    assert raw.brainsam_session_slicing_axis(session._handle, ctypes.byref(axis)) == INVALID_STATE
    buffer = (ctypes.c_uint8 * 8)()
    assert raw.brainsam_session_copy_labels(session._handle, buffer, 8) == INVALID_STATE
    with pytest.raises(BrainSAMError) as caught:
        session.copy_labels()
    assert caught.value.status == INVALID_STATE


def test_too_small_label_buffer_says_the_size_needed(loaded_session):
    raw = loaded_session.library.raw()
    loaded_session.segment_all()
    buffer = (ctypes.c_uint8 * 100)()
    status = raw.brainsam_session_copy_labels(loaded_session._handle, buffer, 100)
    assert status == BUFFER_TOO_SMALL
    assert str(int(np.prod(SHAPE))) in raw.brainsam_last_error_message().decode()


def test_closed_session_and_closed_model(session_lib, model):
    checkpoint = os.environ["BRAINSAM_TEST_CHECKPOINT"]
    second = session_lib.load_model(checkpoint=checkpoint, device="cpu")
    survivor = second.session()
    second.close()
    second.close()  # idempotent
    with pytest.raises(BrainSAMError) as caught:
        second.session()
    assert caught.value.status == INVALID_STATE and "closed" in str(caught.value)
    # The library keeps the model alive for sessions made before the free.
    survivor.set_volume(synthetic_volume(), ijk_to_ras())
    survivor.segment_all()
    assert survivor.copy_labels().shape == SHAPE
    survivor.close()
    with pytest.raises(BrainSAMError) as caught:
        survivor.slicing_axis()
    assert caught.value.status == INVALID_STATE and "closed" in str(caught.value)
