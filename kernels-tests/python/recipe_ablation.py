"""The VAE-GAN recipe, trained and measured in PyTorch: the twin of `vaegan train` that runs an
ablation (issue 26) ~12x faster than vaegan on a CPU adapter, so that many recipes can be
compared at the same budget before the winners are trained by vaegan itself.

    vaegan graph --preset mnist-conv --config-json /tmp/mnist-conv.json
    python3 kernels-tests/python/recipe_ablation.py /tmp/mnist-conv.json --epochs 5 --seed 1 \\
        --set latent_mmd=100 --set gan_fakes=prior --out /tmp/arm.json

The networks are docs/vaegan_torch.py's (the modules `vaegan export --format torch` loads;
their initial weights are PyTorch's defaults, not vaegan's draws); the step is
pytorch_step.make_step, vaegan's step (src/model/vaegan.rs) with every recipe key of the
config: `--set KEY=VALUE` overrides one (VALUE is JSON or a bare word; optim.KEY for the
optimiser), e.g. latent_adversary, latent_mmd, decoder_bn_stats, gan_fakes, kl_weight,
d_fake_weight, pixel_weight_decoder, as vaegan's config reads them. Each epoch also
measures the samples with the decoder's batch-norm statistics re-estimated on --reestimate
batches of decoded prior draws (fd_samples_reestimated), which vaegan does not offer.
The data is MNIST from datasets/mnist. Each epoch ends with the measurements of
`vaegan eval --quality` in the shipped classifier's features (datasets/classifier; an MLP
784-512-256-10, features = the 256 ReLU outputs, d^2 of Gaussians fitted in float64): FD of
10,000 N(0, I) samples and of the test set's reconstructions Dec(mu) against the test images,
class entropy and confident share (top class >= 0.9) of the samples, test -ELBO (BCE of
Dec(z) summed over pixels + KL), the pixel MSE of Dec(mu), and D's accuracy on test images
against as many samples. One JSON line per epoch on stdout; the last also in --out.
"""

import argparse
import copy
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "docs"))
import vaegan_torch  # noqa: E402
from pytorch_step import make_step  # noqa: E402


def idx_images(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    n, h, w = (int.from_bytes(data[i : i + 4], "big") for i in (4, 8, 12))
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, 1, h, w).astype(np.float32) / 255.0)


class Classifier(nn.Module):
    """vaegan's MNIST classifier (src/quality/classifier.rs), weights [in, out] as vaegan stores them."""

    def __init__(self, path):
        super().__init__()
        from safetensors.torch import load_file

        t = load_file(path)
        self.layers = [(t[f"classifier.{i}.weight"], t[f"classifier.{i}.bias"].reshape(-1)) for i in range(3)]

    @torch.no_grad()
    def read(self, images):
        """(features, probabilities) of images in [0, 1], N x 1 x 28 x 28."""
        h = images.reshape(len(images), -1)
        for w, b in self.layers[:2]:
            h = torch.relu(h @ w + b)
        w, b = self.layers[2]
        return h.double(), torch.softmax(h @ w + b, 1)


def frechet(a, b):
    """d^2 between Gaussians fitted to two float64 feature sets (as src/quality/frechet.rs)."""

    def stats(x):
        m = x.mean(0)
        c = x - m
        return m, c.T @ c / (len(x) - 1)

    (m1, s1), (m2, s2) = stats(a), stats(b)

    def sqrt_psd(m):
        l, v = torch.linalg.eigh((m + m.T) / 2)
        return v @ torch.diag(l.clamp(min=0).sqrt()) @ v.T

    r = sqrt_psd(s1)
    inner = r @ s2 @ r
    tr = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    return float(((m1 - m2).dot(m1 - m2) + s1.trace() + s2.trace() - 2 * tr).clamp(min=0))


def coverage(probs):
    top, cls = probs.max(1)
    q = torch.bincount(cls, minlength=10).double() / len(cls)
    entropy = float(-(q[q > 0] * q[q > 0].log()).sum())
    return entropy, float((top >= 0.9).double().mean())


def parse_value(v):
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def batch_norms(module):
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", help="from `vaegan graph --preset P --config-json FILE`")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a model key (optim.KEY for the optimiser)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="training images (default all)")
    ap.add_argument("--samples", type=int, default=10000, help="N(0, I) samples per measurement")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reestimate", type=int, default=100, help="prior batches that re-estimate the decoder's statistics for fd_samples_reestimated (0: off)")
    ap.add_argument("--out", default=None, help="write the last epoch's JSON here")
    ap.add_argument("--save", default=None, help="save the model's state dict here (torch.save)")
    args = ap.parse_args()
    with open(args.config) as f:
        config = json.load(f)
    for key, default in (("latent_mmd", 0.0), ("latent_adversary", 0.0), ("decoder_bn_stats", "both"), ("latent_discriminator", [256, 256])):
        config.setdefault(key, default)
    for kv in args.set:
        key, _, value = kv.partition("=")
        if key.startswith("optim."):
            config["optim"][key[6:]] = parse_value(value)
        elif key in config or key in ("pixel_weight_decoder",):
            config[key] = parse_value(value)
        else:
            sys.exit(f"--set {kv}: unknown key {key!r}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    mnist = os.path.join(ROOT, "datasets", "mnist")
    train = idx_images(os.path.join(mnist, "train-images.idx3-ubyte.gz"))[: args.limit]
    test = idx_images(os.path.join(mnist, "t10k-images.idx3-ubyte.gz"))
    clf = Classifier(os.path.join(ROOT, "datasets", "classifier", "mnist-classifier.safetensors"))
    test_features, _ = clf.read(test)
    floor = frechet(clf.read(train[: len(test)])[0], test_features)

    model = vaegan_torch.VAEGAN(config).train()
    enc, dec, dis = model.encoder, model.decoder, model.discriminator
    b = args.batch
    step = make_step(config, model, b)

    @torch.no_grad()
    def measure(epoch, secs, losses):
        model.eval()
        gen = torch.Generator().manual_seed(1000 + args.seed)
        zs = torch.randn(args.samples, config["latent"], generator=gen)
        samples = torch.cat([dec(c) for c in zs.split(500)])
        feats, probs = clf.read(samples)
        entropy, confident = coverage(probs)
        recs, nelbo, mse, correct = [], 0.0, 0.0, 0
        for xb in test.split(500):
            mu, logvar = enc(xb)
            rec = dec(mu)
            recs.append(rec)
            zb = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
            xs = dec(zb).clamp(1e-7, 1 - 1e-7)
            nelbo += float(F.binary_cross_entropy(xs, xb, reduction="sum") + (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum())
            mse += float((rec - xb).pow(2).sum())
            _, lr = dis(xb)
            _, lf = dis(dec(torch.randn(len(xb), config["latent"], generator=gen)))
            correct += int((lr > 0).sum() + (lf < 0).sum())
        rec_feats, _ = clf.read(torch.cat(recs))
        # The same decoder with its batch-norm statistics re-estimated on prior codes: the
        # running statistics reset, then averaged (momentum None: a cumulative mean) over
        # --reestimate batches of decoded z ~ N(0, I) in training mode.
        fd_reestimated = None
        if args.reestimate > 0:
            dec2 = copy.deepcopy(dec)
            for m in batch_norms(dec2):
                m.reset_running_stats()
                m.momentum = None
            dec2.train()
            for _ in range(args.reestimate):
                dec2(torch.randn(b, config["latent"], generator=gen))
            dec2.eval()
            fd_reestimated = frechet(clf.read(torch.cat([dec2(c) for c in zs.split(500)]))[0], test_features)
        model.train()
        n = len(test)
        return {
            "epoch": epoch,
            "fd_samples": frechet(feats, test_features),
            "fd_reconstructions": frechet(rec_feats, test_features),
            "fd_samples_reestimated": fd_reestimated,
            "fd_floor": floor,
            "class_entropy": entropy,
            "confident": confident,
            "test_nelbo": nelbo / n,
            "mse": mse / (n * test[0].numel()),
            "d_accuracy": correct / (2 * n),
            "train_kl": losses[0],
            "train_llike": losses[1],
            "train_gan_d": losses[2],
            "train_bce": losses[3],
            "seconds": secs,
            "set": args.set,
        }

    gen = torch.Generator().manual_seed(args.seed)
    t0, result = time.time(), None
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(train), generator=gen)
        sums, steps = [0.0] * 4, 0
        for i in range(0, len(train) - b + 1, b):
            out = step(train[order[i : i + b]])
            if not all(math.isfinite(v) for v in out):
                sys.exit(f"diverged at epoch {epoch}, step {steps}: {out}")
            sums = [s + v for s, v in zip(sums, out)]
            steps += 1
        result = measure(epoch, time.time() - t0, [s / steps for s in sums])
        print(json.dumps(result), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f)
    if args.save:
        torch.save(model.state_dict(), args.save)


if __name__ == "__main__":
    main()
