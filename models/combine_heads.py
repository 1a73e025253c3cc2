#!/usr/bin/env python3
"""Combines two BrainSAM model files that share their image encoder: every tensor of
AUTOMATIC except the interactive head (`interactive.*`), which comes from INTERACTIVE.

The two heads of the default model train separately on the same frozen encoder
(models/fine-output-train.toml trains the automatic mask decoder,
models/interactive-fine-train.toml the interactive head); this puts them in one file.
Refuses files whose image encoders or configurations (apart from the head) differ.

Usage: python3 models/combine_heads.py AUTOMATIC INTERACTIVE OUTPUT
(plain Python: reads and writes the safetensors format directly).
"""
import json
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    metadata = header.pop("__metadata__", {})
    body = data[8 + length :]
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        tensors[name] = (entry["dtype"], entry["shape"], body[begin:end])
    return tensors, metadata


def write(path, tensors, metadata):
    header, offset, chunks = {"__metadata__": metadata}, 0, []
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        chunks.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    automatic, auto_meta = read(argv[1])
    interactive, inter_meta = read(argv[2])
    key = "brainsam_config"
    if key not in auto_meta or key not in inter_meta:
        sys.exit(f"error: both files must be BrainSAM model files (metadata '{key}')")
    auto_config, inter_config = json.loads(auto_meta[key]), json.loads(inter_meta[key])
    if not inter_config.get("interactive"):
        sys.exit(f"error: {argv[2]} has no interactive head")
    for config in (auto_config, inter_config):
        config["interactive"] = True
    if auto_config != inter_config:
        sys.exit("error: the two files' configurations differ (apart from the head)")
    for name, tensor in automatic.items():
        if name.startswith("image_encoder.") and interactive.get(name) != tensor:
            sys.exit(f"error: the image encoders differ ({name}): the heads must share one")
    combined = {n: t for n, t in automatic.items() if not n.startswith("interactive.")}
    head = {n: t for n, t in interactive.items() if n.startswith("interactive.")}
    if not head:
        sys.exit(f"error: {argv[2]} holds no interactive.* tensors")
    combined.update(head)
    metadata = dict(auto_meta)
    metadata[key] = json.dumps(auto_config, separators=(",", ":"))
    write(argv[3], combined, metadata)
    print(f"{argv[3]}: {len(combined)} tensors ({len(head)} from the interactive head)")


if __name__ == "__main__":
    main(sys.argv)
