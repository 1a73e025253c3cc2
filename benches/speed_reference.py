"""PyTorch reference workloads for benches/speed.rs (PyPI segment-anything, random weights).

Reads JSON jobs from stdin, one per line:
  {"config": <SamConfig JSON>, "what": "encoder" | "volume" | "prompt",
   "batch": B, "slices": N, "iters": I, "device": "cpu" | "cuda", "bf16": bool}
and prints one line per job: "<ms> <peak bytes>" (peak is the CUDA caching allocator's
max_memory_allocated during the job, 0 on the CPU), or "nan 0 <reason>".

- encoder: image encoder on a batch of B slices; ms per slice.
- volume: N slices encoded in batches of B, each batch decoded without prompts into all
  mask tokens (what an automatic segmentation does); total ms.
- prompt: prompt encoder + mask decoder for one point on a cached embedding; ms.

fp32 jobs run the reference as published (eager, explicit softmax attention). bf16 jobs
run it as fast as PyTorch makes it without compilation: bf16 autocast and the attention
rewritten to torch's scaled_dot_product_attention with the relative-position bias as an
additive mask (as segment-anything-fast does), so ratios compare against a strong baseline.
"""

import json
import sys
import time

import torch
import torch.nn.functional as F
from segment_anything.modeling import image_encoder as sam_image_encoder

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from encoder_reference import build  # noqa: E402  (same directory)

_EAGER_FORWARD = sam_image_encoder.Attention.forward


def _sdpa_forward(self, x):
    batch, height, width, _ = x.shape
    tokens = height * width
    qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # [B, heads, N, head_dim]
    bias = None
    if self.use_rel_pos:
        flat_q = q.reshape(batch * self.num_heads, tokens, -1)
        zeros = torch.zeros(batch * self.num_heads, tokens, tokens, dtype=q.dtype, device=q.device)
        bias = sam_image_encoder.add_decomposed_rel_pos(
            zeros, flat_q, self.rel_pos_h, self.rel_pos_w, (height, width), (height, width)
        )
        bias = bias.view(batch, self.num_heads, tokens, tokens).to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    out = out.view(batch, self.num_heads, height, width, -1).permute(0, 2, 3, 1, 4)
    return self.proj(out.reshape(batch, height, width, -1))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def run_job(job):
    device = torch.device(job.get("device", "cpu"))
    bf16 = bool(job.get("bf16"))
    sam_image_encoder.Attention.forward = _sdpa_forward if bf16 else _EAGER_FORWARD
    cfg = job["config"]
    size = cfg["input_size"]
    batch = int(job.get("batch", 1))
    iters = int(job.get("iters", 1))
    encoder, prompt, decoder = (m.to(device) for m in build(cfg))
    dense_pe = prompt.get_dense_pe()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    def decode_unprompted(embeddings):
        # One (empty) prompt set broadcast over the batch of images: predict_masks
        # repeats the embeddings per prompt, so a batch of 1 decodes every image once.
        sparse, dense = prompt(points=None, boxes=None, masks=None)
        return decoder.predict_masks(embeddings.float(), dense_pe, sparse, dense)

    if job["what"] == "encoder":
        x = torch.randn(batch, 3, size, size, device=device)
        run = lambda: encoder(x)  # noqa: E731
        per = batch
    elif job["what"] == "volume":
        slices = int(job["slices"])
        images = torch.rand(slices, 1, size, size)

        def run():
            for start in range(0, slices, batch):
                chunk = images[start : start + batch].to(device).expand(-1, 3, -1, -1)
                masks, _ = decode_unprompted(encoder(chunk))
                masks.cpu()

        per = 1
    else:
        embedding = encoder(torch.randn(1, 3, size, size, device=device))
        points = torch.tensor([[[size * 0.4, size * 0.6]]], device=device)
        labels = torch.ones(1, 1, device=device)

        def run():
            sparse, dense = prompt(points=(points, labels), boxes=None, masks=None)
            masks, _ = decoder.predict_masks(embedding.float(), dense_pe, sparse, dense)
            return masks.cpu()

        per = 1
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        if iters > 1 or device.type == "cuda":
            run()  # warm-up (skipped for single slow CPU runs)
        _sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            run()
        _sync(device)
    ms = (time.perf_counter() - start) / iters / per * 1000.0
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return ms, peak


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            ms, peak = run_job(json.loads(line))
            print(f"{ms:.4f} {peak}", flush=True)
        except torch.cuda.OutOfMemoryError:
            print("nan 0 out-of-memory", flush=True)
        except Exception as error:  # report and go on with the next row
            print(f"reference failed: {error}", file=sys.stderr)
            print("nan 0 failed", flush=True)
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
