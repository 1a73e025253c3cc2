"""Writes torch.save checkpoints for tests/weights_io.rs.

Usage: make_checkpoints.py OUT_DIR small   -> official/plain/wrapped/proto4/legacy files
       make_checkpoints.py OUT_DIR sam     -> a random-init SAM vit_b state dict

Every file comes with OUT_DIR/<name>.json: [[name, dtype, shape, sum_as_float64], ...]
in state-dict order, so that Rust can check names, shapes and values.
"""
import json
import sys
from collections import OrderedDict
from pathlib import Path

import torch


def manifest(state_dict, path):
    rows = []
    for name, tensor in state_dict.items():
        rows.append([name, str(tensor.dtype).replace("torch.", ""), list(tensor.shape),
                     float(tensor.detach().double().sum())])
    path.write_text(json.dumps(rows))


def small(out: Path):
    torch.manual_seed(0)
    sd = OrderedDict()
    sd["f32"] = torch.randn(3, 4)
    sd["f16"] = torch.randn(2, 5).half()
    sd["bf16"] = torch.randn(7).bfloat16()
    sd["f64"] = torch.randn(2, 2, 2, dtype=torch.float64)
    sd["i64"] = torch.arange(-5, 5, dtype=torch.int64) * 123456789012
    sd["i32"] = torch.randint(-2**31, 2**31 - 1, (6,), dtype=torch.int32)
    sd["i16"] = torch.randint(-2**15, 2**15 - 1, (3, 2), dtype=torch.int16)
    sd["i8"] = torch.randint(-128, 127, (9,), dtype=torch.int8)
    sd["u8"] = torch.randint(0, 255, (2, 3), dtype=torch.uint8)
    sd["bool"] = torch.randn(11) > 0
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 4)
    # A transposed (non-contiguous) view of a larger storage.
    sd["transposed"] = torch.randn(4, 6).t()
    # Two views sharing one storage at different offsets, one with a step.
    shared = torch.arange(40, dtype=torch.float32)
    sd["shared.a"] = shared[2:8]
    sd["shared.b"] = shared[10:30].view(4, 5)[:, 1:4]
    sd["shared.every_third"] = shared[1::3]
    # The same tensor twice (memoised in the pickle) and a Parameter.
    sd["again"] = sd["f32"]
    sd["parameter"] = torch.nn.Parameter(torch.randn(2, 3))
    # What nn.Module.state_dict() adds: an _metadata attribute (written with BUILD).
    sd._metadata = OrderedDict([("", {"version": 1}), ("block", {"version": 2})])

    torch.save(sd, out / "official.pth")
    manifest(sd, out / "official.json")
    plain = {name: t.detach().contiguous().clone() for name, t in sd.items()}
    torch.save(plain, out / "plain.pt")
    torch.save({"model": sd, "epoch": 3, "lr": 0.25, "note": "x", "flags": [1, 2],
                "nested": {"a": (1, None, True)}}, out / "wrapped_model.pth")
    torch.save({"state_dict": sd, "step": 10}, out / "wrapped_state_dict.pt")
    torch.save(sd, out / "protocol4.pth", pickle_protocol=4)
    torch.save(sd, out / "legacy.pth", _use_new_zipfile_serialization=False)
    torch.save([sd["f32"]], out / "list.pt")
    torch.save({"epoch": 3, "weights": sd["f32"]}, out / "mixed.pt")
    torch.save({"complex": torch.randn(2, dtype=torch.complex64)}, out / "complex.pt")
    # uint16 is one of the newer dtypes saved with _rebuild_tensor_v3 and an untyped storage.
    torch.save({"u16": torch.zeros(3, dtype=torch.uint16)}, out / "uint16.pt")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), out / "scripted.pt")


def sam(out: Path):
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    model = sam_model_registry["vit_b"]()
    sd = model.state_dict()
    torch.save(sd, out / "sam_vit_b.pth")
    manifest(sd, out / "sam_vit_b.json")


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    {"small": small, "sam": sam}[sys.argv[2]](target)
