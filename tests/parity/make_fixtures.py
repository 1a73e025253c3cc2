"""Build parity fixtures for the Rust SAM port from the reference `segment-anything`.

Usage: make_fixtures.py OUT_DIR [--sizes 256 1024]

Writes (all tensors float32, CPU):
  weights_vit_b_1024.pth   state dict in the official format (OrderedDict, zip)
  weights_vit_b_256.pth    the same resized to 256 as SAMed does, official format
  weights_vit_b_1024.pt    the same tensors as a plain dict (readable by tch)
  weights_vit_b_256.pt     the 1024 weights resized SAMed-style (pos_embed bilinear,
                           global rel_pos linear along their length) as a plain dict
  cases_{size}.pt          inputs and reference outputs for each prompt case
  lora_256.pt              LoRA tensors (our names) and the encoder output with LoRA
  stamp                    written last; holds the hash the Rust test expects

Every parameter is randomised (the reference initialises pos_embed and rel_pos to
zero, which would hide bugs in their use).
"""

import argparse
import hashlib
import os
import sys
from collections import OrderedDict
from functools import partial

import torch
import torch.nn.functional as F
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

PATCH = 16
WINDOW = 14
GLOBAL_BLOCKS = (2, 5, 8, 11)


def build_vit_b(img_size: int) -> Sam:
    grid = img_size // PATCH
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=12,
            embed_dim=768,
            img_size=img_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=12,
            patch_size=PATCH,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=GLOBAL_BLOCKS,
            window_size=WINDOW,
            out_chans=256,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=256,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
    ).eval()


def randomise(sam: Sam) -> None:
    """Adds noise to every parameter and buffer (pos_embed and rel_pos get more)."""
    with torch.no_grad():
        for name, tensor in sam.state_dict().items():
            if name in ("pixel_mean", "pixel_std"):
                continue
            scale = 0.5 if ("pos_embed" in name or "rel_pos" in name) else 0.02
            tensor.add_(torch.randn_like(tensor) * scale)


def resize_state_dict(sd, img_size: int):
    """SAMed's resizing of a 1024 state dict to another input size."""
    grid = img_size // PATCH
    out = OrderedDict()
    for name, t in sd.items():
        if name == "image_encoder.pos_embed":
            t = F.interpolate(t.permute(0, 3, 1, 2), (grid, grid), mode="bilinear", align_corners=False)
            t = t.permute(0, 2, 3, 1).contiguous()
        elif "rel_pos" in name and int(name.split(".")[2]) in GLOBAL_BLOCKS:
            length, width = t.shape
            t = F.interpolate(t[None, None], (2 * grid - 1, width), mode="bilinear", align_corners=False)
            t = t[0, 0].contiguous()
        out[name] = t.clone()
    return out


def cases(img_size: int):
    """Prompt cases in input-pixel coordinates (scaled from a 256 layout)."""
    s = img_size / 256.0
    grid = img_size // PATCH
    g = torch.Generator().manual_seed(7)
    return {
        "none": {},
        "one_point": {"point_coords": torch.tensor([[[100.0, 80.0]]]) * s, "point_labels": torch.tensor([[1.0]])},
        "three_points": {
            "point_coords": torch.tensor([[[50.0, 60.0], [120.0, 130.0], [200.0, 40.0]]]) * s,
            "point_labels": torch.tensor([[1.0, 0.0, 1.0]]),
        },
        "box": {"boxes": torch.tensor([[30.0, 40.0, 180.0, 200.0]]) * s},
        "box_points": {
            "point_coords": torch.tensor([[[90.0, 100.0], [150.0, 60.0]]]) * s,
            "point_labels": torch.tensor([[1.0, 0.0]]),
            "boxes": torch.tensor([[30.0, 40.0, 180.0, 200.0]]) * s,
        },
        "mask": {"mask_inputs": torch.randn(1, 1, 4 * grid, 4 * grid, generator=g) * 3.0},
        "two_prompts": {
            "point_coords": torch.tensor([[[40.0, 50.0], [70.0, 90.0]], [[160.0, 20.0], [10.0, 230.0]]]) * s,
            "point_labels": torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
        },
    }


@torch.no_grad()
def run_cases(sam: Sam, img_size: int, image_hw, original_hw):
    g = torch.Generator().manual_seed(3)
    image = torch.rand(3, *image_hw, generator=g) * 255.0
    out = {"image": image, "original_size": torch.tensor(original_hw)}
    x = sam.preprocess(image)[None]
    out["preprocessed"] = x
    emb = sam.image_encoder(x)
    out["image_embeddings"] = emb
    out["dense_pe"] = sam.prompt_encoder.get_dense_pe()
    for name, case in cases(img_size).items():
        for k, v in case.items():
            out[f"{name}.{k}"] = v
        points = (case["point_coords"], case["point_labels"]) if "point_coords" in case else None
        sparse, dense = sam.prompt_encoder(points=points, boxes=case.get("boxes"), masks=case.get("mask_inputs"))
        low_res, iou = sam.mask_decoder.predict_masks(
            image_embeddings=emb,
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
        )
        masks = sam.postprocess_masks(low_res, input_size=tuple(image_hw), original_size=tuple(original_hw))
        out[f"{name}.sparse"] = sparse.contiguous()
        out[f"{name}.dense"] = dense.contiguous()
        out[f"{name}.low_res"] = low_res
        out[f"{name}.iou"] = iou
        out[f"{name}.masks"] = masks
    return out


class LoraQkv(torch.nn.Module):
    """SAMed-style LoRA on q and v of a qkv projection (independent of the Rust code)."""

    def __init__(self, qkv, a_q, b_q, a_v, b_v, scale):
        super().__init__()
        self.qkv, self.a_q, self.b_q, self.a_v, self.b_v, self.scale = qkv, a_q, b_q, a_v, b_v, scale

    def forward(self, x):
        out = self.qkv(x)
        dim = x.shape[-1]
        dq = (x @ self.a_q.T) @ self.b_q.T
        dv = (x @ self.a_v.T) @ self.b_v.T
        out[..., :dim] += self.scale * dq
        out[..., -dim:] += self.scale * dv
        return out


@torch.no_grad()
def lora_fixture(sd_256, rank: int, alpha: float):
    sam = build_vit_b(256)
    sam.load_state_dict(sd_256)
    g = torch.Generator().manual_seed(11)
    out = {}
    dim = 768
    for i, blk in enumerate(sam.image_encoder.blocks):
        t = {}
        for part in ("q", "v"):
            t[f"a_{part}"] = (torch.rand(rank, dim, generator=g) * 2 - 1) / dim**0.5
            t[f"b_{part}"] = torch.randn(dim, rank, generator=g) * 0.05
            out[f"image_encoder.blocks.{i}.attn.lora_{part}_a.weight"] = t[f"a_{part}"]
            out[f"image_encoder.blocks.{i}.attn.lora_{part}_b.weight"] = t[f"b_{part}"]
        blk.attn.qkv = LoraQkv(blk.attn.qkv, t["a_q"], t["b_q"], t["a_v"], t["b_v"], alpha / rank)
    g2 = torch.Generator().manual_seed(5)
    x = torch.randn(1, 3, 256, 256, generator=g2)
    out["input"] = x
    out["image_embeddings"] = sam.image_encoder(x)
    out["rank"] = torch.tensor(rank)
    out["alpha"] = torch.tensor(alpha)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--stamp", default="")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    sam1024 = build_vit_b(1024)
    randomise(sam1024)
    sd = sam1024.state_dict()
    torch.save(sd, os.path.join(args.out_dir, "weights_vit_b_1024.pth"))
    torch.save(dict(sd), os.path.join(args.out_dir, "weights_vit_b_1024.pt"))
    sd256 = resize_state_dict(sd, 256)
    torch.save(dict(sd256), os.path.join(args.out_dir, "weights_vit_b_256.pt"))
    # The official format (an OrderedDict, as torch.save(model.state_dict()) writes): the
    # Rust parity tests load these through BrainSAM's own reader.
    torch.save(sd256, os.path.join(args.out_dir, "weights_vit_b_256.pth"))

    for size in args.sizes:
        if size == 1024:
            sam = sam1024
            out = run_cases(sam, 1024, (768, 1024), (768, 1024))
        else:
            sam = build_vit_b(size)
            sam.load_state_dict(resize_state_dict(sd, size))
            out = run_cases(sam, size, (192, 256) if size == 256 else (size * 3 // 4, size), (384, 512))
        torch.save(out, os.path.join(args.out_dir, f"cases_{size}.pt"))
        print(f"cases_{size}.pt written", file=sys.stderr)

    torch.save(lora_fixture(sd256, rank=16, alpha=32.0), os.path.join(args.out_dir, "lora_256.pt"))
    with open(os.path.join(args.out_dir, "stamp"), "w") as f:
        f.write(args.stamp)


if __name__ == "__main__":
    main()
