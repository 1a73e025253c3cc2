"""PyTorch reference timings for benches/encoder.rs.

Reads JSON jobs from stdin, one per line:
  {"config": <SamConfig JSON>, "what": "encoder"|"decoder", "iters": N, "device": "cpu"|"cuda", "bf16": bool}
and prints one line per job: the mean milliseconds per slice (or "nan" on failure).
Models are the reference `segment-anything` modules with random weights.
"""

import json
import sys
import time
from functools import partial

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer


def build(cfg):
    enc = cfg["image_encoder"]
    dec = cfg["mask_decoder"]
    size = cfg["input_size"]
    grid = size // enc["patch_size"]
    encoder = ImageEncoderViT(
        img_size=size,
        patch_size=enc["patch_size"],
        embed_dim=enc["embed_dim"],
        depth=enc["depth"],
        num_heads=enc["num_heads"],
        mlp_ratio=enc["mlp_dim"] / enc["embed_dim"],
        out_chans=enc["out_chans"],
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=enc["window_size"],
        global_attn_indexes=tuple(enc["global_attn_indexes"]),
    )
    prompt = PromptEncoder(
        embed_dim=cfg["prompt_encoder"]["embed_dim"],
        image_embedding_size=(grid, grid),
        input_image_size=(size, size),
        mask_in_chans=cfg["prompt_encoder"]["mask_in_chans"],
    )
    decoder = MaskDecoder(
        transformer_dim=dec["transformer_dim"],
        transformer=TwoWayTransformer(
            depth=dec["transformer_depth"],
            embedding_dim=dec["transformer_dim"],
            mlp_dim=dec["mlp_dim"],
            num_heads=dec["num_heads"],
        ),
        num_multimask_outputs=dec["num_mask_tokens"] - 1,
        iou_head_depth=dec["iou_head_depth"],
        iou_head_hidden_dim=dec["iou_head_hidden_dim"],
    )
    return encoder.eval(), prompt.eval(), decoder.eval()


@torch.no_grad()
def time_job(job):
    cfg = job["config"]
    device = torch.device(job.get("device", "cpu"))
    encoder, prompt, decoder = (m.to(device) for m in build(cfg))
    size = cfg["input_size"]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(job.get("bf16")))
    if job["what"] == "encoder":
        x = torch.randn(1, 3, size, size, device=device)
        run = lambda: encoder(x)
    else:
        emb = encoder(torch.randn(1, 3, size, size, device=device))
        pts = torch.tensor([[[size * 0.4, size * 0.6]]], device=device)
        lbl = torch.ones(1, 1, device=device)

        def run():
            sparse, dense = prompt(points=(pts, lbl), boxes=None, masks=None)
            return decoder.predict_masks(emb, prompt.get_dense_pe(), sparse, dense)

    with autocast:
        if job["iters"] > 1 or device.type == "cuda":
            run()  # warm-up (skipped for the single slow CPU iteration)
        sync()
        start = time.perf_counter()
        for _ in range(job["iters"]):
            run()
        sync()
    return (time.perf_counter() - start) / job["iters"] * 1000.0


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            ms = time_job(json.loads(line))
            print(f"{ms:.3f}", flush=True)
        except Exception as e:  # report and go on with the next row
            print(f"reference failed: {e}", file=sys.stderr)
            print("nan", flush=True)


if __name__ == "__main__":
    main()
