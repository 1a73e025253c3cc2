"""Names and shapes of the reference `segment-anything` state dict for a BrainSAM config.

Usage: state_dict_shapes.py < configs.json   (a JSON list of SamConfigs as
`SamConfig::to_json` writes them; LoRA and the interactive head are BrainSAM's own and
not built here)

Prints a JSON list with one object {name: shape} per config: `Sam(...).state_dict()`
built from the same numbers (on the meta device: nothing allocated).
"""

import json
import sys
from functools import partial

import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)


def build(config) -> Sam:
    enc = config["image_encoder"]
    pe = config["prompt_encoder"]
    dec = config["mask_decoder"]
    size = config["input_size"]
    grid = size // enc["patch_size"]
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=enc["depth"],
            embed_dim=enc["embed_dim"],
            img_size=size,
            mlp_ratio=enc["mlp_dim"] / enc["embed_dim"],
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=enc["num_heads"],
            patch_size=enc["patch_size"],
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=tuple(enc["global_attn_indexes"]),
            window_size=enc["window_size"],
            out_chans=enc["out_chans"],
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=pe["embed_dim"],
            image_embedding_size=(grid, grid),
            input_image_size=(size, size),
            mask_in_chans=pe["mask_in_chans"],
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=dec["num_mask_tokens"] - 1,
            transformer=TwoWayTransformer(
                depth=dec["transformer_depth"],
                embedding_dim=dec["transformer_dim"],
                mlp_dim=dec["mlp_dim"],
                num_heads=dec["num_heads"],
                attention_downsample_rate=dec["attention_downsample_rate"],
            ),
            transformer_dim=dec["transformer_dim"],
            iou_head_depth=dec["iou_head_depth"],
            iou_head_hidden_dim=dec["iou_head_hidden_dim"],
        ),
    )


def main():
    result = []
    for config in json.load(sys.stdin):
        if config.get("lora") or config.get("interactive"):
            sys.exit("LoRA and the interactive head have no reference counterpart")
        with torch.device("meta"):
            sam = build(config)
        result.append({name: list(t.shape) for name, t in sam.state_dict().items()})
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
