"""The binding's Adapt (brainsam_adapt_*) against the real library with a tiny model: a
short in-memory adaptation whose adapter loads on its base, a cancelled run that leaves
no adapter, and clear errors for bad pairs."""

import math
import os
import time

import numpy as np
import pytest

from brainsam.adapt import Adapt
from brainsam.binding import BrainSAMError

INVALID_ARGUMENT, INVALID_STATE = 1, 6


@pytest.fixture(scope="module")
def model(lib):
    if not hasattr(lib.raw(), "brainsam_adapt_start"):
        pytest.skip(f"{lib.path} has no brainsam_adapt_start yet")
    checkpoint = os.environ.get("BRAINSAM_TEST_CHECKPOINT")
    if not checkpoint:
        pytest.skip("skipped: BRAINSAM_TEST_CHECKPOINT (a BrainSAM model checkpoint) not set")
    with lib.load_model(checkpoint=checkpoint, device="cpu") as loaded:
        yield loaded


def phantom():
    """A 40^3 4 mm head [k, j, i] with the FreeSurfer thalami (10, 49) as bright blobs."""
    n, spacing = 40, 4.0
    matrix = np.diag([spacing, spacing, spacing, 1.0])
    matrix[:3, 3] = -spacing * (n - 1) / 2
    k, j, i = np.indices((n, n, n), dtype=np.float64)
    ras = [(axis - (n - 1) / 2) * spacing for axis in (i, j, k)]
    head = (ras[0] / 70) ** 2 + (ras[1] / 78) ** 2 + (ras[2] / 72) ** 2 <= 1
    image = np.where(head, 100.0, 0.0) + ((i * 7 + j * 13 + k * 17) % 11) * head
    labels = np.where(head, 2, 0)
    for code, x in ((10, -14.0), (49, 14.0)):
        blob = (ras[0] - x) ** 2 + (ras[1] + 4) ** 2 + (ras[2] + 8) ** 2 <= 14**2
        image[blob] = 140.0
        labels[blob] = code
    return image.astype(np.float32), matrix, labels.astype(np.int16), matrix


def test_adapt_in_memory_runs_and_its_adapter_loads_on_the_base(lib, model, tmp_path):
    image, m, labels, _ = phantom()
    seen = []
    run = Adapt(
        model,
        [(image, m, labels, m, "freesurfer", "phantom")],
        iterations=4,
        device="cpu",
        progress_callback=lambda p: seen.append(p) and False,
    )
    with run:
        with pytest.raises(BrainSAMError) as early:
            run.save(tmp_path / "early.safetensors")
        assert early.value.status == INVALID_STATE
        while run.progress()["state"] == "running":
            time.sleep(0.05)
        assert run.wait() == "finished"
        progress = run.progress()
        assert progress["iteration"] == progress["total"] == 4, progress
        assert math.isfinite(progress["loss"])
        assert math.isfinite(progress["best_validation_dice"])
        assert [p["iteration"] for p in seen] == [1, 2, 3, 4]
        run.save(tmp_path / "site.safetensors")
    assert not (tmp_path / "early.safetensors").exists()
    with lib.load_model(
        checkpoint=model.checkpoint, adapter=tmp_path / "site.safetensors", device="cpu"
    ) as adapted:
        assert adapted.adapter == tmp_path / "site.safetensors"


def test_a_cancelled_adaptation_leaves_no_adapter(model, tmp_path):
    image, m, labels, _ = phantom()
    with Adapt(model, [(image, m, labels, m, "freesurfer")], iterations=500, device="cpu") as run:
        run.cancel()
        assert run.wait() == "cancelled"
        assert run.progress()["state"] == "cancelled"
        with pytest.raises(BrainSAMError) as error:
            run.save(tmp_path / "site.safetensors")
        assert error.value.status == INVALID_STATE
        assert "cancelled" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_bad_pairs_get_clear_errors(model):
    image, m, labels, _ = phantom()
    cases = [
        ([(image, m, labels[:-1], m, "freesurfer")], ["pair 1", "grid"]),
        ([(image, m, np.zeros_like(labels), m, "freesurfer")], ["none of the 12 structures"]),
        ([(image, m, labels, m, "classes")], ["unknown to the classes"]),
        ([(image, m, labels, m, "no-such-scheme")], ["unknown label scheme"]),
    ]
    nan_image = image.copy()
    nan_image[3, 4, 5] = np.nan
    cases.append(([(nan_image, m, labels, m, "freesurfer")], ["NaN"]))
    for pairs, needles in cases:
        with pytest.raises(BrainSAMError) as error:
            Adapt(model, pairs, iterations=1, device="cpu")
        assert error.value.status == INVALID_ARGUMENT, error.value
        for needle in needles:
            assert needle in str(error.value), (needle, str(error.value))
    with pytest.raises(BrainSAMError):
        Adapt(model, [], iterations=1)
