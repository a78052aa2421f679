#!/usr/bin/env python3
"""The reference stack (PyTorch + transformers + torchvision), timed the way `brasa bench` times
brasa, so the two can be compared side by side on one machine. Never a dependency of brasa.

  train  samples/s of forward + cross-entropy + backward + clip_grad_norm_(1.0) + AdamW
         (lr 2e-5, eps 1e-8, weight decay 0.01) on seeded random pixels copied from the host
         every step, model.train(); timed over --steps steps with one wait at the end
  infer  samples/s of model.eval() forward under torch.inference_mode(), same batch
  data   images/s of decode (PIL) + resize to the input + the reference notebook's augmentation
         chain (Resize, RandomRotation(15), RandomResizedCrop(scale .8-1), H/V flips,
         ColorJitter(.2, .2)) + ToTensor + Normalize, through a DataLoader with --threads workers
         (and decode alone)

Models are random-init from transformers configs (nothing is downloaded): cvt13 / vitb16 are the
library defaults (CvT-13, ViT-B/16); cvt-tiny is CvT with embed 32/64/128, depth 1/2/2, heads
1/2/4; vit-tiny is 192 wide, 6 layers, 3 heads, MLP 768, patch 8 — brasa's configurations.

  pip install -r bench/requirements.txt
  python3 bench/torch_bench.py --model cvt-tiny --size 96 --batch 32 --threads 2 --what train,infer
  python3 bench/torch_bench.py --model cvt13 --size 224 --batch 16 --device cuda
Prints one JSON line on stdout.
"""
import argparse
import glob
import json
import os
import platform
import resource
import sys
import time

MODELS = ["cvt13", "vitb16", "cvt-tiny", "vit-tiny"]


def build_model(name, size, num_labels=4):
    from transformers import CvtConfig, CvtForImageClassification, ViTConfig, ViTForImageClassification
    if name == "cvt13":
        return CvtForImageClassification(CvtConfig(num_labels=num_labels))
    if name == "cvt-tiny":
        # transformers indexes a stage's drop-path list with the stage number, so a stage with
        # depth <= its index raises; build stage 3 with 3 layers and keep 2 (all are identical)
        model = CvtForImageClassification(CvtConfig(embed_dim=[32, 64, 128], depth=[1, 2, 3], num_heads=[1, 2, 4], num_labels=num_labels))
        stage = model.cvt.encoder.stages[2]
        stage.layers = stage.layers[:2]
        model.config.depth = [1, 2, 2]
        return model
    if name == "vitb16":
        return ViTForImageClassification(ViTConfig(num_labels=num_labels, image_size=size))
    if name == "vit-tiny":
        return ViTForImageClassification(ViTConfig(hidden_size=192, num_hidden_layers=6, num_attention_heads=3,
                                                   intermediate_size=768, image_size=size, patch_size=8, num_labels=num_labels))
    raise SystemExit(f"unknown model {name!r}; choose from {MODELS}")


def timed(step, warmup, steps, wait):
    t0 = time.perf_counter()
    out = None
    for k in range(warmup):
        out = step(k)
    if out is not None:
        wait(out)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k in range(steps):
        out = step(warmup + k)
    wait(out)
    return time.perf_counter() - t0, warm


def bench_model(args, result):
    import torch
    device = torch.device(args.device)
    model = build_model(args.model, args.size).to(device)
    result["parameters"] = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(args.seed)
    pixels = (torch.rand(args.batch, 3, args.size, args.size, generator=g) * 4 - 2)
    labels = torch.randint(0, 4, (args.batch,), generator=g)
    if device.type == "cuda":
        pixels = pixels.pin_memory()
    sync = (lambda _: torch.cuda.synchronize()) if device.type == "cuda" else (lambda _: None)
    whats = args.what.split(",")
    if "infer" in whats:
        model.eval()

        def infer(_):
            with torch.inference_mode():
                return model(pixel_values=pixels.to(device, non_blocking=True)).logits
        seconds, warm = timed(infer, args.warmup, args.steps, sync)
        result["infer"] = {"samples_per_s": args.batch * args.steps / seconds, "steps": args.steps, "seconds": seconds, "warmup_seconds": warm}
    if "train" in whats:
        model.train()
        no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "norm" in n.lower()]
        decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "norm" in n.lower())]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=2e-5, eps=1e-8)
        loss_fn = torch.nn.CrossEntropyLoss()

        def train(_):
            logits = model(pixel_values=pixels.to(device, non_blocking=True)).logits
            loss = loss_fn(logits, labels.to(device, non_blocking=True))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss
        seconds, warm = timed(train, args.warmup, args.steps, sync)
        result["train"] = {"samples_per_s": args.batch * args.steps / seconds, "steps": args.steps, "seconds": seconds, "warmup_seconds": warm}
    if device.type == "cuda":
        result["gpu_memory_bytes"] = torch.cuda.max_memory_reserved()


class Images:
    def __init__(self, paths, transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image
        with Image.open(self.paths[i]) as im:
            image = im.convert("RGB")
        return self.transform(image) if self.transform else 0


def bench_data(args, result):
    import torch
    from torchvision import transforms as T
    paths = sorted(glob.glob(os.path.join(args.data, "Training", "*", "*")))
    if args.limit:
        paths = paths[: args.limit]
    if not paths:
        raise SystemExit(f"no images under {args.data}/Training")
    for p in paths:  # the page cache first
        with open(p, "rb") as f:
            f.read()
    s = args.size
    normalize = T.Normalize([0.5] * 3, [0.5] * 3)
    clean = T.Compose([T.Resize((s, s)), T.ToTensor(), normalize])
    augment = T.Compose([T.Resize((s, s)), T.RandomRotation(15), T.RandomResizedCrop(s, scale=(0.8, 1.0)), T.RandomHorizontalFlip(),
                         T.RandomVerticalFlip(), T.ColorJitter(brightness=0.2, contrast=0.2), T.ToTensor(), normalize])
    both = lambda image: (clean(image), augment(image))  # noqa: E731
    out = {"images": len(paths)}
    for key, transform in [("decode_per_s", None), ("full_per_s", both)]:
        loader = torch.utils.data.DataLoader(Images(paths, transform), batch_size=32, num_workers=args.threads,
                                             persistent_workers=False)
        t0 = time.perf_counter()
        for _ in loader:
            pass
        out[key] = len(paths) / (time.perf_counter() - t0)
    result["data"] = out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=MODELS, default="cvt-tiny")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--what", default="train,infer")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "brain-tumor-mri"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tf32", action="store_true",
                    help="matmuls in TF32 on CUDA too (PyTorch's default computes them in full fp32, "
                         "its convolutions in TF32), as burn's CUDA tensor-core matmuls do")
    args = ap.parse_args()

    import torch
    import transformers
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    result = {"stack": "pytorch", "torch": torch.__version__, "transformers": transformers.__version__,
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "threads": args.threads, "device": args.device, "model": args.model,
              "image_size": [args.size, args.size], "batch": args.batch}
    if args.device.startswith("cuda"):
        if args.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
        result["gpu"] = torch.cuda.get_device_name()
        result["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        result["tf32_conv"] = torch.backends.cudnn.allow_tf32
    if {"train", "infer"} & set(args.what.split(",")):
        bench_model(args, result)
    if "data" in args.what.split(","):
        bench_data(args, result)
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
