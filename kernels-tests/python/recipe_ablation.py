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
against as many samples (a D that trains a pass per batch normalises each test batch by
itself, as vaegan's evaluation does). One JSON line per epoch on stdout; the last also in --out.

With --data DIR (a labelled colour folder, `vaegan make-dataset shapes --size 32`; needs
Pillow) the model trains on that folder instead (10 % held out by the seed; not vaegan's
draw) and is measured in the shipped shapes32 classifier's features (ColourClassifier, the
file read as vaegan reads it): FD, the combinations' entropy over shape × colour ×
background, the share of samples confident on every head, and per factor the share of
test reconstructions read as their own image's class (`reconstruction_accuracy`: whether
the decoder draws the shape, not only the colour). --grid writes test images, their
reconstructions and samples each epoch. `--set probe_encoder_pool=max|cat` and
`probe_discriminator_pool=...` try an architecture vaegan does not build (the last
convolution read through each channel's maximum over positions, alone or beside the
flattened activations), to decide whether it is worth building; `probe_encoder_llike=W`
weighs Dis_l in the encoder's objective (0, with gamma=0, kl_weight=0, gan_fakes=none and
pixel_weight=1: a pixel-only autoencoder, to ask whether the networks can draw at all);
`probe_decoder_broadcast=[S,W,L]` replaces the decoder by a spatial broadcast one
(BroadcastDecoder). `--probe render` trains the decoder alone to draw each image from its
true factors, `--probe see` the encoder alone to read them (factor_probe): whether each
network can do its half of the task at this budget, apart from the other and the objective:

    vaegan graph --preset shapes32 --config-json /tmp/shapes32.json
    python3 kernels-tests/python/recipe_ablation.py /tmp/shapes32.json --data data/shapes32 \\
        --epochs 5 --samples 2000 --reestimate 0 --set optim.lr_encoder=2e-3 --grid /tmp/g.png
    python3 kernels-tests/python/recipe_ablation.py /tmp/shapes32.json --data data/shapes32 \\
        --probe render --epochs 10 --threads 1
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
        return h.double(), [torch.softmax(h @ w + b, 1)]


class ColourClassifier(nn.Module):
    """vaegan's colour classifier (src/quality/classifier.rs; the shipped
    shapes32-classifier.safetensors): its spec from the file's metadata, convolutions stored
    [kh*kw*in, out] (HWIO) read into PyTorch's OIHW, batch norm with its running statistics,
    each channel's maximum over positions, dense 256 (the features), one head per factor."""

    def __init__(self, path):
        super().__init__()
        from safetensors import safe_open

        with safe_open(path, "pt") as f:
            self.spec = json.loads(f.metadata()["spec"])
            t = {k: f.get_tensor(k) for k in f.keys()}
        h, w, c = self.spec["image"]
        self.convs = []
        for i, layer in enumerate(self.spec["conv"]):
            k, out = layer["kernel"], layer["channels"]
            name = f"classifier.conv{i}"
            weight = t[f"{name}.weight"].reshape(k, k, c, out).permute(3, 2, 0, 1).contiguous()
            bias = t.get(f"{name}.bias")
            bn = None
            if layer["batch_norm"]:
                bn = [t[f"{name}.bn.{n}"].reshape(-1) for n in ("weight", "bias", "running_mean", "running_var")]
            self.convs.append((weight, None if bias is None else bias.reshape(-1), layer["stride"], k // 2, bn))
            c = out
        n = len(self.spec["dense"])
        self.dense = [(t[f"classifier.{i}.weight"], t[f"classifier.{i}.bias"].reshape(-1)) for i in range(n)]
        self.heads = [(t[f"classifier.{n}.head{k}.weight"], t[f"classifier.{n}.head{k}.bias"].reshape(-1)) for k in range(len(self.spec["heads"]))]

    @torch.no_grad()
    def read(self, images):
        """(features, [probabilities per head]) of images in [0, 1], N x C x H x W."""
        h = images
        for weight, bias, stride, pad, bn in self.convs:
            h = F.conv2d(h, weight, bias, stride=stride, padding=pad)
            if bn is not None:
                g, b, m, v = bn
                h = F.batch_norm(h, m, v, g, b, False, 0.0, 1e-5)
            h = torch.relu(h)
        h = h.amax((2, 3)) if self.spec["pool"] else h.permute(0, 2, 3, 1).reshape(len(h), -1)
        for w, b in self.dense:
            h = torch.relu(h @ w + b)
        return h.double(), [torch.softmax(h @ w + b, 1) for w, b in self.heads]


def folder_images(folder, limit=None):
    """A labelled image folder as `vaegan make-dataset shapes` writes it: factors.csv (a `file`
    column, then one column per factor) and the PNGs it names. Returns (images N x C x H x W in
    [0, 1], {factor: class indices}, {factor: class names}). Needs Pillow (pip install pillow)."""
    import csv

    from PIL import Image

    with open(os.path.join(folder, "factors.csv"), newline="") as f:
        rows = list(csv.DictReader(f))[:limit]
    images = np.stack([np.asarray(Image.open(os.path.join(folder, r["file"])).convert("RGB")) for r in rows])
    x = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
    labels, names = {}, {}
    for col in rows[0]:
        if col == "file":
            continue
        values = [r[col] for r in rows]
        classes = sorted(set(values))
        if len(classes) <= 8:  # a categorical factor (position, size and angle are numbers)
            names[col] = classes
            labels[col] = torch.tensor([classes.index(v) for v in values])
    return x, labels, names


def write_grid(path, *rows, cols=16):
    """Image sets (N x C x H x W in [0, 1]) as rows of `cols` tiles in one PNG."""
    from PIL import Image

    tiles = torch.cat([r.clamp(0, 1) for r in rows])
    n, c, h, w = tiles.shape
    tiles = torch.cat([tiles, torch.zeros((-n) % cols, c, h, w)])
    grid = tiles.reshape(-1, cols, c, h, w).permute(0, 3, 1, 4, 2).reshape(-1, cols * w, c)
    pixels = (grid * 255 + 0.5).to(torch.uint8).numpy()
    Image.fromarray(pixels[..., 0] if c == 1 else pixels).save(path)


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


def coverage(heads):
    """Entropy of the top combination of classes over the heads (in nats; ln of the number of
    combinations at most) and the share of images whose top class is >= 0.9 on every head."""
    combo, confident, total = 0, torch.ones(len(heads[0]), dtype=torch.bool), 1
    for probs in heads:
        top, cls = probs.max(1)
        combo, total = combo * probs.shape[1] + cls, total * probs.shape[1]
        confident &= top >= 0.9
    q = torch.bincount(combo, minlength=total).double() / len(combo)
    entropy = float(-(q[q > 0] * q[q > 0].log()).sum())
    return entropy, float(confident.double().mean())


def pool_positions(net, mode):
    """A probe of an architecture vaegan does not build yet: `net` (a vaegan_torch Encoder or
    Discriminator) reads its last convolution's activations through each channel's maximum
    over positions ("max", what made the shapes classifier read shape), or through the
    flattened activations and that maximum side by side ("cat"), instead of flattened. Its
    first dense layer is rebuilt for the new width."""
    if mode in (None, "", "none", "flatten"):
        return
    is_dis = isinstance(net, vaegan_torch.Discriminator)
    convs = net.convs if is_dis else [n for n in net.trunk if n.startswith("conv")]
    channels = getattr(net, convs[-1]).out_channels
    old = net.dense0
    width = channels if mode == "max" else old.in_features + channels
    new = nn.Linear(width, old.out_features, bias=False)
    if hasattr(old, "bn"):
        new.bn = nn.BatchNorm1d(old.out_features)
    net.dense0 = new

    def flatten(x):
        return x.amax((2, 3)) if mode == "max" else torch.cat([x.flatten(1), x.amax((2, 3))], 1)

    def encoder_forward(images):
        x = images
        for name in net.trunk:
            layer = getattr(net, name)
            if isinstance(layer, nn.Linear) and x.dim() == 4:
                x = flatten(x)
            x = net.act(vaegan_torch._block(layer, x))
        return net.mu(x.flatten(1)), net.logvar(x.flatten(1))

    def discriminator_forward(images, labels=None):
        x, features = images, None
        for name in net.convs:
            layer = getattr(net, name)
            features = x = layer(x)
            if hasattr(layer, "bn"):
                x = layer.bn(x)
            x = net.act(x)
        x = flatten(x)
        for name in net.dense:
            x = net.act(vaegan_torch._block(getattr(net, name), x))
        return features, net.out(x)

    net.forward = discriminator_forward if is_dis else encoder_forward


class BroadcastDecoder(nn.Module):
    """A probe of a decoder vaegan does not build (`--set probe_decoder_broadcast=[S,W,L]`):
    Watters et al.'s spatial broadcast — z tiled at every cell of an S x S grid beside the
    cell's two coordinates in [-1, 1], then L 1x1 convolutions of width W (batch norm, the
    hidden activation), the same weights at every cell, so a shape is drawn by one function
    of its offset from the cell instead of by a dense layer's separate weights per position.
    At S = the image's side a last 1x1 convolution writes the pixels; at a smaller S the cells
    feed the config's transposed convolutions (the dense layer replaced)."""

    def __init__(self, base, side, width, layers):
        super().__init__()
        self.config, h, w, c = base.config, *base.config["image"]
        self.side, self.act, self.out_act = side, base.act, base.out_act
        ch, mods = base.config["latent"] + 2, []
        for i in range(layers):
            last_to_cells = side < h and i + 1 == layers
            out = base.first[0] if last_to_cells else width
            mods.append(vaegan_torch._with_bn(nn.Conv2d(ch, out, 1, bias=False), nn.BatchNorm2d(out)))
            ch = out
        self.mlp = nn.ModuleList(mods)
        self.out = nn.Conv2d(ch, c, 1) if side == h else None
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None])
        self.deconvs = nn.ModuleList([getattr(base, n) for n in base.layers] if side < h else [])

    def forward(self, z, labels=None):
        n, s = len(z), self.side
        x = torch.cat([z[:, :, None, None].expand(n, z.shape[1], s, s), self.coords.expand(n, 2, s, s)], 1)
        for m in self.mlp:
            x = self.act(m.bn(m(x)))
        if self.out is not None:
            return self.out_act(self.out(x))
        for i, layer in enumerate(self.deconvs):
            x = vaegan_torch._block(layer, x)
            x = self.out_act(x) if i + 1 == len(self.deconvs) else self.act(x)
        return x


def factor_codes(folder, labels, latent, raw_angle=False, products=False):
    """Each image's true factors as a code of `latent` numbers, for `--probe render`: shape,
    colour and background one-hot, the centre and size (scaled to about [-1, 1]), the angle
    as cos and sin of k times it, k the shape's rotational symmetry (1 circle, 4 square, 3
    triangle: the same image gives the same code), with `raw_angle` also cos and sin of the
    angle itself; with `products` also the centre's coordinates times cos and sin of the
    angle (an edge's offset from the origin along its rotated normal is a sum of such
    products: a network linear in its code before the first ReLU cannot form them); zeros
    after."""
    import csv

    with open(os.path.join(folder, "factors.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    num = torch.tensor([[float(r[k]) for k in ("x", "y", "size", "angle")] for r in rows])
    angle = num[:, 3:4]
    k = torch.tensor([1.0, 4.0, 3.0])[labels["shape"]][:, None]
    parts = [F.one_hot(labels[h], n).float() for h, n in (("shape", 3), ("colour", 6), ("background", 4))]
    parts += [(num[:, :3] - 0.5) * 4, torch.cos(k * angle), torch.sin(k * angle)]
    if raw_angle:
        parts += [torch.cos(angle), torch.sin(angle)]
    if products:
        centre = (num[:, :2] - 0.5) * 4
        parts += [centre * torch.cos(angle), centre * torch.sin(angle)]
    codes = torch.cat(parts, 1)
    if codes.shape[1] > latent:
        sys.exit(f"the factors need {codes.shape[1]} code numbers, the config's latent is {latent}")
    return torch.cat([codes, torch.zeros(len(codes), latent - codes.shape[1])], 1)


def factor_probe(args, config, images, labels, order, n_test, clf, heads):
    """`--probe render`: the config's decoder alone (or `probe_decoder_broadcast`'s) learns to
    draw each training image from its true factors (`factor_codes`), the pixels' BCE its
    loss — no encoder, no KL, no discriminator: can it draw the shapes at all at this budget?
    `--probe see`: the config's encoder alone learns to read the factors (a linear head per
    factor on its mu, cross-entropy) — can it see them? Adam at the decoder's (encoder's)
    rate and the config's beta1, batch --batch; each epoch, the share of test images right per
    factor: for `render`, the drawings as the shapes classifier reads them."""
    test_idx, train_idx = order[:n_test], order[n_test:][: args.limit]
    b, optim = args.batch, config["optim"]
    if args.probe == "render":
        codes = factor_codes(args.data, labels, config["latent"], config.pop("probe_raw_angle", False), config.pop("probe_products", False))
        net = vaegan_torch.Decoder(config)
        broadcast = config.pop("probe_decoder_broadcast", None)
        if broadcast:
            net = BroadcastDecoder(net, *broadcast)
        lr = optim["lr_decoder"]
    else:
        net = vaegan_torch.Encoder(config)
        sizes = [len(h["classes"]) for h in clf.spec["heads"]]
        net.heads = nn.ModuleList([nn.Linear(config["latent"], n) for n in sizes])
        lr = optim["lr_encoder"]
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(optim["beta1"], optim["beta2"]), eps=optim["eps"])

    def read(x):
        mu, _ = net(x)
        return [head(torch.relu(mu)) for head in net.heads]

    gen, t0 = torch.Generator().manual_seed(args.seed), time.time()
    for epoch in range(1, args.epochs + 1):
        net.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for i in range(0, len(perm) - b + 1, b):
            idx = perm[i : i + b]
            if args.probe == "render":
                loss = F.binary_cross_entropy(net(codes[idx]).clamp(1e-7, 1 - 1e-7), images[idx], reduction="sum") / b
            else:
                loss = sum(F.cross_entropy(o, labels[h][idx]) for h, o in zip(heads, read(images[idx])))
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            mse = None
            if args.probe == "render":
                drawn = torch.cat([net(codes[c]) for c in test_idx.split(500)])
                outs = clf.read(drawn)[1]
                mse = float((drawn - images[test_idx]).pow(2).mean())
                if args.grid:
                    write_grid(args.grid, images[test_idx[:16]], drawn[:16])
            else:
                outs = read(images[test_idx])
            right = {h: float((o.argmax(1) == labels[h][test_idx]).double().mean()) for h, o in zip(heads, outs)}
        print(json.dumps({"probe": args.probe, "epoch": epoch, "right": right, "mse": mse, "seconds": time.time() - t0, "set": args.set}), flush=True)


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
    ap.add_argument("--data", default=None, help="a labelled colour folder (`vaegan make-dataset shapes --size 32`) instead of MNIST; measured with the shipped shapes32 classifier")
    ap.add_argument("--ema", type=float, default=0.0, help="also measure samples from an exponential moving average of the decoder's weights with this decay per step (e.g. 0.999; 0: off), its statistics re-estimated on prior codes")
    ap.add_argument("--probe", choices=["render", "see"], default=None, help="with --data: train the decoder alone to draw each image from its true factors (render), or the encoder alone to read them (see); see factor_probe")
    ap.add_argument("--grid", default=None, help="write test images, their reconstructions and samples as a PNG here each epoch (needs Pillow)")
    args = ap.parse_args()
    with open(args.config) as f:
        config = json.load(f)
    for key, default in (("latent_mmd", 0.0), ("latent_adversary", 0.0), ("decoder_bn_stats", "both"), ("latent_discriminator", [256, 256])):
        config.setdefault(key, default)
    for kv in args.set:
        key, _, value = kv.partition("=")
        if key.startswith("optim."):
            config["optim"][key[6:]] = parse_value(value)
        elif key in config or key in ("pixel_weight_decoder", "probe_encoder_pool", "probe_discriminator_pool", "probe_encoder_llike", "probe_decoder_broadcast", "probe_raw_angle", "probe_products"):
            config[key] = parse_value(value)
        else:
            sys.exit(f"--set {kv}: unknown key {key!r}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    test_labels = None
    if args.data:
        # 10 % held out by the seed, as vaegan holds out a folder's images (not the same draw).
        images, labels, _ = folder_images(args.data)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))
        n_test = max(1, len(images) // 10)
        test, train = images[order[:n_test]], images[order[n_test:]][: args.limit]
        test_labels = {k: v[order[:n_test]] for k, v in labels.items()}
        clf = ColourClassifier(os.path.join(ROOT, "datasets", "classifier", "shapes32-classifier.safetensors"))
        heads = [h["name"] for h in clf.spec["heads"]]
        if args.probe:
            return factor_probe(args, config, images, labels, order, n_test, clf, heads)
    else:
        if args.probe:
            sys.exit("--probe needs --data (a labelled colour folder)")
        mnist = os.path.join(ROOT, "datasets", "mnist")
        train = idx_images(os.path.join(mnist, "train-images.idx3-ubyte.gz"))[: args.limit]
        test = idx_images(os.path.join(mnist, "t10k-images.idx3-ubyte.gz"))
        clf = Classifier(os.path.join(ROOT, "datasets", "classifier", "mnist-classifier.safetensors"))
    test_features, _ = clf.read(test)
    floor = frechet(clf.read(train[: len(test)])[0], test_features)

    model = vaegan_torch.VAEGAN(config).train()
    pool_positions(model.encoder, config.pop("probe_encoder_pool", None))
    pool_positions(model.discriminator, config.pop("probe_discriminator_pool", None))
    broadcast = config.pop("probe_decoder_broadcast", None)
    if broadcast:
        model.decoder = BroadcastDecoder(model.decoder, *broadcast)
    enc, dec, dis = model.encoder, model.decoder, model.discriminator
    b = args.batch
    step = make_step(config, model, b)
    # The decoder's weights averaged over steps (Polyak averaging, as in Yazici et al. 2019):
    # a probe of whether sampling from an average beats sampling from the last step.
    ema = copy.deepcopy(dec) if args.ema > 0 else None

    dis_bns = batch_norms(dis)

    def test_time_dis(images):
        # As vaegan's evaluation graph (model::build_eval): a D that trains a pass per batch
        # normalises each test pass by its own batch, its running statistics untouched.
        if config.get("joint_batches", False):
            return dis(images)
        dis.train()
        for m in dis_bns:
            m.momentum = 0.0
        out = dis(images)
        for m in dis_bns:
            m.momentum = 0.1
        dis.eval()
        return out

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
            xp = dec(torch.randn(len(xb), config["latent"], generator=gen))
            _, lr = test_time_dis(xb)
            _, lf = test_time_dis(xp)
            correct += int((lr > 0).sum() + (lf < 0).sum())
        recs = torch.cat(recs)
        rec_feats, rec_probs = clf.read(recs)
        # Per factor: the share of reconstructions read as their own image's class.
        rec_accuracy = None
        if test_labels is not None:
            rec_accuracy = {h: float((p.argmax(1) == test_labels[h]).double().mean()) for h, p in zip(heads, rec_probs)}
        if args.grid:
            write_grid(args.grid, test[:16], recs[:16], samples[:32])
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
        fd_ema = None
        if ema is not None:
            dec3 = copy.deepcopy(ema)
            for m in batch_norms(dec3):
                m.reset_running_stats()
                m.momentum = None
            dec3.train()
            for _ in range(max(args.reestimate, 100)):
                dec3(torch.randn(b, config["latent"], generator=gen))
            dec3.eval()
            fd_ema = frechet(clf.read(torch.cat([dec3(c) for c in zs.split(500)]))[0], test_features)
        model.train()
        n = len(test)
        return {
            "epoch": epoch,
            "fd_samples": frechet(feats, test_features),
            "fd_reconstructions": frechet(rec_feats, test_features),
            "reconstruction_accuracy": rec_accuracy,
            "fd_samples_reestimated": fd_reestimated,
            "fd_samples_ema": fd_ema,
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
            if ema is not None:
                with torch.no_grad():
                    for pe, p in zip(ema.parameters(), dec.parameters()):
                        pe.lerp_(p, 1.0 - args.ema)
        # vaegan's schedule: the rates times optim.lr_decay after each epoch.
        for opt in step.optimizers:
            for g in opt.param_groups:
                g["lr"] *= float(config["optim"].get("lr_decay", 1.0))
        result = measure(epoch, time.time() - t0, [s / steps for s in sums])
        print(json.dumps(result), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f)
    if args.save:
        torch.save(model.state_dict(), args.save)


if __name__ == "__main__":
    main()
