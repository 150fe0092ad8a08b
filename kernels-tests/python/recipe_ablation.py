"""The VAE-GAN recipe, trained and measured in PyTorch: the twin of `vaegan train` that runs an
ablation (issue 26) ~12x faster than vaegan on a CPU adapter, so that many recipes can be
compared at the same budget before the winners are trained by vaegan itself.

    vaegan graph --preset mnist-conv --config-json /tmp/mnist-conv.json
    python3 kernels-tests/python/recipe_ablation.py /tmp/mnist-conv.json --epochs 5 --seed 1 \\
        --set latent_mmd=100 --set gan_fakes=prior --out /tmp/arm.json

The networks are docs/vaegan_torch.py's (the modules `vaegan export --format torch` loads);
the step is pytorch_step.py's, which is vaegan's (src/model/vaegan.rs) with every recipe key
of the config (`--set KEY=VALUE` overrides one; VALUE is JSON or a bare word), plus the keys
vaegan learned from this ablation:
  latent_mmd    weight of MMD(q(z), N(0, I)) in the encoder's objective (Tolstikhin et al.
                2018): the inverse multiquadric kernel k(a, b) = C / (C + |a - b|^2),
                C = 2 * latent, between the batch's sampled codes z and the step's z_p, the
                unbiased estimate; vaegan's `latent_mmd` is the same term.
  latent_adversary  weight of an adversarial autoencoder's term (Makhzani et al. 2015) in the
                encoder's objective: a latent discriminator (an MLP latent-256-256-1, leaky
                ReLU 0.2, Adam at the discriminator's rate) learns to tell z_p from z, and the
                encoder is trained to make z pass as a prior draw, BCE(D_z(z), 1).
  decoder_bn_stats     which decoder passes update its batch-norm running statistics, which decode
                samples: "both" (vaegan's default: the posterior and the prior pass), "prior"
                or "posterior".
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
from pytorch_step import optimizer  # noqa: E402


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


def mmd_imq(z, p):
    """Unbiased MMD^2 between the rows of z and of p, kernel C / (C + |a - b|^2), C = 2 d."""
    n, d = z.shape
    c = 2.0 * d

    def k(a, b):
        return c / (c + torch.cdist(a, b).pow(2))

    off = 1.0 - torch.eye(n)
    return (k(z, z) * off).sum() / (n * (n - 1)) + (k(p, p) * off).sum() / (n * (n - 1)) - 2.0 * k(z, p).mean()


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
    config.setdefault("latent_mmd", 0.0)
    config.setdefault("latent_adversary", 0.0)
    config.setdefault("decoder_bn_stats", "both")
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
    ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
    gamma, w_pix = config["gamma"], config["pixel_weight"]
    w_pix_dec = config.get("pixel_weight_decoder")
    w_pix_dec = w_pix if w_pix_dec is None else w_pix_dec
    kl_weight, d_fake = config.get("kl_weight", 1.0), config.get("d_fake_weight", 1.0)
    fakes = str(config.get("gan_fakes", "both"))
    sees_rec, sees_p = fakes in ("both", "reconstructions"), fakes in ("both", "prior")
    w_mmd, decoder_bn_stats = float(config["latent_mmd"]), config["decoder_bn_stats"]
    optim = config["optim"]
    opts = [
        optimizer(optim.get(f"optimizer_{part}", "adam"), net.parameters(), optim[f"lr_{part}"], optim)
        for part, net in (("encoder", enc), ("decoder", dec), ("discriminator", dis))
    ]
    groups = [list(enc.parameters()), list(dec.parameters()), list(dis.parameters())]
    w_adv = float(config["latent_adversary"])
    if w_adv > 0:
        d = config["latent"]
        dz = nn.Sequential(nn.Linear(d, 256), nn.LeakyReLU(0.2), nn.Linear(256, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1))
        opts.append(optimizer(optim.get("optimizer_discriminator", "adam"), dz.parameters(), optim["lr_discriminator"], optim))
        groups.append(list(dz.parameters()))
    dec_bns = batch_norms(dec)

    def decode(z, updates_stats):
        # A pass that must not move the running statistics runs with momentum 0.
        if not updates_stats:
            for m in dec_bns:
                m.momentum = 0.0
        out = dec(z)
        for m in dec_bns:
            m.momentum = 0.1
        return out

    def step(x):
        mu, logvar = enc(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        z_p = torch.randn_like(mu)
        if config.get("joint_batches", False):
            xx = dec(torch.cat([z, z_p]))
            x_rec, x_p = xx[:b], xx[b:]
            f, logits = dis(torch.cat([x, xx]))
            f_real, f_rec = f[:b], f[b : 2 * b]
            l_real, l_rec, l_p = logits[:b], logits[b : 2 * b], logits[2 * b :]
        else:
            x_rec = decode(z, decoder_bn_stats in ("both", "posterior"))
            x_p = decode(z_p, decoder_bn_stats in ("both", "prior"))
            f_real, l_real = dis(x)
            f_rec, l_rec = dis(x_rec)
            _, l_p = dis(x_p)
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        llike = 0.5 * (f_rec.flatten(1) - f_real.flatten(1).detach()).pow(2).sum() / b
        bce = lambda logit, t: F.binary_cross_entropy_with_logits(logit, t, reduction="sum") / b  # noqa: E731
        d_real = bce(l_real, ones)
        gan_d, gan_g = d_real, 0.0
        for seen, logit in ((sees_rec, l_rec), (sees_p, l_p)):
            if seen:
                gan_d = gan_d + d_fake * bce(logit, zeros)
                gan_g = gan_g + bce(logit, ones)
        l_enc = kl_weight * kl + llike
        l_dec = gamma * llike + gan_g
        if w_mmd > 0:
            l_enc = l_enc + w_mmd * mmd_imq(z, z_p)
        pixel = F.binary_cross_entropy(x_rec.clamp(1e-7, 1 - 1e-7), x, reduction="sum") / b
        if w_pix > 0 or w_pix_dec > 0:
            l_enc = l_enc + w_pix * pixel
            l_dec = l_dec + w_pix_dec * pixel
        if w_adv > 0:
            l_enc = l_enc + w_adv * bce(dz(z), ones)
            gan_dz = bce(dz(z_p), ones) + bce(dz(z.detach()), zeros)
        grads = [
            torch.autograd.grad(l_enc, groups[0], retain_graph=True),
            torch.autograd.grad(l_dec, groups[1], retain_graph=True),
            torch.autograd.grad(gan_d, groups[2], retain_graph=w_adv > 0),
        ]
        if w_adv > 0:
            grads.append(torch.autograd.grad(gan_dz, groups[3]))
        for opt, params, gs in zip(opts, groups, grads):
            for p, g in zip(params, gs):
                p.grad = g
            opt.step()
        return tuple(float(t.detach()) for t in (kl, llike, gan_d, pixel))

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
