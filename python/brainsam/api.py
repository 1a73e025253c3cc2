"""The Pythonic front of BrainSAM: one call segments a NIfTI file or an array.

Arrays here follow nibabel's convention: indexed [i, j, k] with a 4x4 voxel-to-RAS affine
(``img.get_fdata()`` and ``img.affine``). The lower-level `Session` uses Slicer's [k, j, i]
order with an IJK-to-RAS matrix, which is the same matrix.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Optional, Union

import numpy as np

from .binding import BrainSAMError, FineTune, Library, Model

#: Class id -> structure name (0 is background).
STRUCTURES = {
    1: "Left-Thalamus",
    2: "Right-Thalamus",
    3: "Left-Caudate",
    4: "Right-Caudate",
    5: "Left-Putamen",
    6: "Right-Putamen",
    7: "Left-Pallidum",
    8: "Right-Pallidum",
    9: "Left-Hippocampus",
    10: "Right-Hippocampus",
    11: "Left-Amygdala",
    12: "Right-Amygdala",
}

PathLike = Union[str, "os.PathLike[str]"]


def read_volume(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(voxels [i, j, k] as float32, 4x4 voxel-to-RAS affine) of a NIfTI file (nibabel)."""
    import nibabel

    if not os.path.isfile(path):
        raise BrainSAMError(3, f"input volume {os.fspath(path)} does not exist")
    try:
        image = nibabel.load(os.fspath(path))
    except Exception as error:  # noqa: BLE001 - nibabel raises many types
        raise BrainSAMError(4, f"cannot read {os.fspath(path)} as NIfTI: {error}") from error
    data = np.asarray(image.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise BrainSAMError(1, f"{os.fspath(path)} is {data.ndim}-D {data.shape}, need 3-D")
    return data, np.asarray(image.affine, dtype=np.float64)


def save_labels(labels: np.ndarray, affine: np.ndarray, path: PathLike) -> None:
    """Write a label volume [i, j, k] with its affine as NIfTI (uint8)."""
    import nibabel

    image = nibabel.Nifti1Image(np.asarray(labels, dtype=np.uint8), np.asarray(affine))
    image.header.set_intent("label")
    nibabel.save(image, os.fspath(path))


def load_model(
    checkpoint: Optional[PathLike] = None,
    adapter: Optional[PathLike] = None,
    device: str = "auto",
    precision: str = "auto",
) -> Model:
    """A model: `checkpoint` (default: the bundled model), an optional LoRA `adapter`,
    device "auto", "cpu", "cuda" or "cuda:N", precision "auto", "fp32", "bf16", "fp16"."""
    return Model(checkpoint=checkpoint, adapter=adapter, device=device, precision=precision)


def segment(
    volume: Union[PathLike, np.ndarray],
    affine: Optional[np.ndarray] = None,
    *,
    model: Optional[Model] = None,
    device: str = "auto",
    mirror_averaging: bool = True,
    shift_averaging: bool = True,
    view_averaging: bool = True,
    cleanup: bool = True,
    batch_size: int = 0,
    progress: Optional[Callable[[int, int], object]] = None,
    output: Optional[PathLike] = None,
) -> np.ndarray:
    """Segment the 12 structures of a T1 volume; returns uint8 labels [i, j, k] (class ids,
    see STRUCTURES) on the input's grid.

    `volume`: a NIfTI path, or an array [i, j, k] with `affine` (4x4 voxel-to-RAS; default:
    the identity, 1 mm voxels). `model`: a loaded Model (default: the bundled model on
    `device`). `mirror_averaging` / `shift_averaging` / `view_averaging` off: 2x / 4x / 2x
    faster, less accurate (`view_averaging`: the models of other slice orientations the
    model file carries, such as the default model's axial and sagittal models). `progress(done, total)` returning true cancels. `output`: also write the
    labels there as NIfTI (with the input's affine)."""
    if isinstance(volume, (str, os.PathLike)):
        if affine is not None:
            raise BrainSAMError(1, "affine is taken from the file: pass it only with an array")
        data, affine = read_volume(volume)
    else:
        data = np.asarray(volume)
        if data.ndim != 3:
            raise BrainSAMError(
                1, f"volume must be a 3-D array [i, j, k], got {data.ndim}-D {data.shape}"
            )
        affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise BrainSAMError(1, f"affine must be 4x4, got shape {affine.shape}")
    own_model = model is None
    if own_model:
        model = load_model(device=device)
    try:
        with model.session(
            batch_size=batch_size,
            mirror_averaging=mirror_averaging,
            cleanup=cleanup,
            shift_averaging=shift_averaging,
            view_averaging=view_averaging,
        ) as session:
            # The session takes [k, j, i]; the transpose is a view, copied once by the library.
            session.set_volume(data.T, affine)
            session.segment_all(progress)
            labels = session.copy_labels().T.copy()
    finally:
        if own_model:
            model.close()
    if output is not None:
        save_labels(labels, affine, output)
    return labels


def fine_tune(
    config: PathLike,
    output: Optional[PathLike] = None,
    *,
    resume: bool = False,
    save: str = "best_model",
    progress: Optional[Callable[[dict], object]] = None,
    poll_seconds: float = 1.0,
    library: Optional[Library] = None,
) -> str:
    """Fine-tune with a `brainsam fine-tune` TOML configuration and wait for the end.
    `progress(status)` is called about every `poll_seconds` with the status dict of
    FineTune.progress(); a truthy return cancels. On success `output` (if given) receives
    the `save` output ("model", "adapter" or "best_model"). Returns "finished" or
    "cancelled"; a failed run raises BrainSAMError."""
    with FineTune(config, resume=resume, library=library) as run:
        while True:
            status = run.progress()
            if status["state"] != "running":
                break
            if progress is not None and progress(status):
                run.cancel()
            time.sleep(poll_seconds)
        outcome = run.wait()
        if outcome == "finished" and output is not None:
            run.save(output, save)
        return outcome
