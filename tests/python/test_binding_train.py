"""The binding's FineTune against the real library: a tiny phantom dataset (written with
nibabel), a short run to the end whose model loads, a cancelled run, and errors."""

import math
import time

import nibabel as nib
import numpy as np
import pytest

from brainsam import binding
from brainsam.binding import BrainSAMError

IO_ERROR, INVALID_ARGUMENT, INVALID_STATE = 3, 1, 6


@pytest.fixture(scope="module")
def train_lib(lib):
    if not hasattr(lib.raw(), "brainsam_fine_tune_start"):
        pytest.skip(f"{lib.path} has no brainsam_fine_tune_start yet")
    return lib


def write_phantom(folder):
    """A 40^3 4 mm head with the FreeSurfer thalami (10, 49) as bright blobs."""
    n, spacing = 40, 4.0
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -spacing * (n - 1) / 2
    i, j, k = np.indices((n, n, n), dtype=np.float64)
    ras = [(axis - (n - 1) / 2) * spacing for axis in (i, j, k)]
    head = (ras[0] / 70) ** 2 + (ras[1] / 78) ** 2 + (ras[2] / 72) ** 2 <= 1
    image = np.where(head, 100.0, 0.0) + ((i * 7 + j * 13 + k * 17) % 11) * head
    labels = np.where(head, 2, 0)
    for code, x in ((10, -14.0), (49, 14.0)):
        blob = (ras[0] - x) ** 2 + (ras[1] + 4) ** 2 + (ras[2] + 8) ** 2 <= 14**2
        image[blob] = 140.0
        labels[blob] = code
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine), folder / "a_T1.nii.gz")
    nib.save(nib.Nifti1Image(labels.astype(np.int16), affine), folder / "a_aseg.nii.gz")


def write_config(folder, name, iterations):
    path = folder / f"{name}.toml"
    path.write_text(
        f"""[model]
config = "tiny"
mode = "full"
[run]
device = "cpu"
iterations = {iterations}
batch_size = 2
validate_every = 0
checkpoint_every = 0
output_dir = "{name}-out"
[optim]
warmup = 2
[[subjects]]
image = "a_T1.nii.gz"
label = "a_aseg.nii.gz"
scheme = "freesurfer"
"""
    )
    return path


def test_fine_tune_runs_to_the_end_and_its_model_loads(train_lib, tmp_path):
    write_phantom(tmp_path)
    with binding.FineTune(write_config(tmp_path, "short", 6), library=train_lib) as run:
        with pytest.raises(BrainSAMError) as early:
            run.save(tmp_path / "early.safetensors")
        assert early.value.status == INVALID_STATE
        progress = run.progress()
        while progress["state"] == "running":
            time.sleep(0.05)
            progress = run.progress()
        assert run.wait() == "finished"
        progress = run.progress()
        assert progress["state"] == "finished", progress
        assert progress["iteration"] == progress["total"] == 6
        assert math.isfinite(progress["loss"]) and progress["lr"] > 0
        assert math.isnan(progress["best_validation_dice"])
        saved = tmp_path / "tuned.safetensors"
        run.save(saved)
        with pytest.raises(BrainSAMError, match="no adapter"):
            run.save(tmp_path / "adapter.safetensors", output="adapter")
    assert run.closed
    with train_lib.load_model(checkpoint=saved, device="cpu") as model:
        model.session().close()


def test_fine_tune_cancel_and_errors(train_lib, tmp_path):
    write_phantom(tmp_path)
    with pytest.raises(BrainSAMError) as missing:
        binding.FineTune(tmp_path / "missing.toml", library=train_lib)
    assert missing.value.status == IO_ERROR and "missing.toml" in str(missing.value)
    with pytest.raises(BrainSAMError, match="run.iterations") as invalid:
        binding.FineTune(write_config(tmp_path, "zero", 0), library=train_lib)
    assert invalid.value.status == INVALID_ARGUMENT
    run = binding.FineTune(write_config(tmp_path, "long", 100000), library=train_lib)
    deadline = time.time() + 60
    while run.progress()["iteration"] < 1 and time.time() < deadline:
        time.sleep(0.05)
    run.cancel()
    assert run.wait() == "cancelled"
    assert run.progress()["state"] == "cancelled"
    assert (tmp_path / "long-out" / "checkpoint.safetensors").is_file()
    run.close()
    with pytest.raises(BrainSAMError):
        run.progress()
