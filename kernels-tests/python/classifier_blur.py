#!/usr/bin/env python3
"""How the shipped shapes classifier reads test images that are only degraded: blurred,
down- and up-sampled, or noisy — at pixel errors like those of `shapes32`'s decoders.

A check of the measure behind issue 27's shape aims: if a blur with the decoders' test MSE
already made the classifier misread the shape, "shape read right" would measure the
classifier's taste for crisp corners rather than whether a decoder draws the shape.

    python3 kernels-tests/python/classifier_blur.py --data data/shapes32 [--seed 1]

One JSON line per degradation: the test MSE it causes, the share of test images read right
per factor, the share confident (p > 0.9) on all three, and shape read right by size tercile.
The test images are the twin's (`recipe_ablation.py --data`, the same seed's 10 %).
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recipe_ablation as twin  # noqa: E402


def gaussian(x, sigma):
    """A separable Gaussian blur of N x C x H x W images, edges replicated."""
    if sigma == 0:
        return x
    r = int(3 * sigma + 0.5)
    t = torch.arange(-r, r + 1).float()
    k = torch.exp(-(t**2) / (2 * sigma * sigma))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a shapes folder (vaegan make-dataset shapes)")
    ap.add_argument("--seed", type=int, default=1, help="the twin's seed, which picks the test images")
    args = ap.parse_args()
    torch.set_num_threads(1)
    images, labels, _ = twin.folder_images(args.data)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))
    idx = order[: max(1, len(images) // 10)]
    test = images[idx]
    clf = twin.ColourClassifier(os.path.join(twin.ROOT, "datasets", "classifier", "shapes32-classifier.safetensors"))
    heads = [h["name"] for h in clf.spec["heads"]]
    import csv

    with open(os.path.join(args.data, "factors.csv"), newline="") as f:
        size = torch.tensor([float(r["size"]) for r in csv.DictReader(f)])[idx]
    cut = size.quantile(torch.tensor([1 / 3, 2 / 3]))
    terciles = [size <= cut[0], (size > cut[0]) & (size <= cut[1]), size > cut[1]]

    def report(name, x):
        probs = clf.read(x)[1]
        right = {h: float((p.argmax(1) == labels[h][idx]).double().mean()) for h, p in zip(heads, probs)}
        confident = float(torch.stack([p.max(1).values > 0.9 for p in probs]).all(0).double().mean())
        shape_right = probs[heads.index("shape")].argmax(1) == labels["shape"][idx]
        by_size = [round(float(shape_right[t].double().mean()), 3) for t in terciles]
        mse = float((x - test).pow(2).mean())
        print(json.dumps({"degradation": name, "mse": round(mse, 5), "right": {k: round(v, 3) for k, v in right.items()}, "confident_all": round(confident, 3), "shape_right_by_size_tercile": by_size}), flush=True)

    for sigma in [0, 0.4, 0.6, 0.8, 1.0, 1.5]:
        report(f"gaussian blur, sigma {sigma} px", gaussian(test, sigma))
    for factor in [2, 4]:
        report(f"mean-pooled {factor}x, bilinear back up", F.interpolate(F.avg_pool2d(test, factor), scale_factor=factor, mode="bilinear", align_corners=False))
    gen = torch.Generator().manual_seed(args.seed)
    report("gaussian noise, sd 0.05, clamped", (test + 0.05 * torch.randn(test.shape, generator=gen)).clamp(0, 1))


if __name__ == "__main__":
    main()
