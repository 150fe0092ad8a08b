"""vaegan's training step in PyTorch, to put beside `vaegan bench --step` on one machine.

    vaegan graph --preset mnist-conv --config-json /tmp/mnist-conv.json
    python3 kernels-tests/python/pytorch_step.py /tmp/mnist-conv.json --batch 64 --threads 2

The model is docs/vaegan_torch.py's (the modules `vaegan export --format torch` loads),
built from the same config; the step is vaegan's (src/model/vaegan.rs, Larsen et al.'s
Algorithm 1) with the config's weights:

    mu, logvar = Enc(x); z = mu + eps * sigma; z_p ~ N(0, I)
    x_rec = Dec(z); x_p = Dec(z_p)          (one pass per batch, as `joint_batches = false`;
    f, logit = Dis(x), Dis(x_rec), Dis(x_p)  with `joint_batches = true`, one pass over all)
    encoder       <- grad(kl_weight * KL + L_llike + pixel_weight * BCE(x_rec, x)
                          [+ latent_adversary * BCE(D_z(z), 1)])
    decoder       <- grad(gamma * L_llike + L_GAN_G + pixel_weight_decoder * BCE(x_rec, x))
    discriminator <- grad(L_GAN_D)
    [D_z          <- grad(BCE(D_z(z_p), 1) + BCE(D_z(z), 0)), the latent discriminator]

each group's gradient taken from its own objective, then every group stepped by its
optimizer (Adam or RMSProp, the config's rates). Batch norm in training mode throughout.
Prints samples/s and ms/step over --steps steps after --warmup steps, on the CPU with
--threads threads (vaegan's step on lavapipe uses the machine's cores the same way).
The data is synthetic (a fixed pattern in [0, 1]), as `vaegan bench --step`'s is.
"""

import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs"))
import vaegan_torch  # noqa: E402


def optimizer(name, params, lr, config):
    """vaegan's optimizer names: "adam" or "rmsprop" (with the config's betas, rho and eps)."""
    name = str(name).lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(config.get("beta1", 0.9), config.get("beta2", 0.999)), eps=config.get("eps", 1e-8))
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=config.get("rho", 0.9), eps=config.get("eps", 1e-8))
    raise ValueError(f"unknown optimizer {name!r}")


def mmd_imq(z, p):
    """Unbiased MMD^2 between the rows of z and of p, kernel C / (C + |a - b|^2), C = 2 d
    (vaegan's `latent_mmd` term, shaders/mmd.wgsl)."""
    n, d = z.shape
    c = 2.0 * d

    def k(a, b):
        return c / (c + torch.cdist(a, b).pow(2))

    off = 1.0 - torch.eye(n)
    return (k(z, z) * off).sum() / (n * (n - 1)) + (k(p, p) * off).sum() / (n * (n - 1)) - 2.0 * k(z, p).mean()


def make_step(config, model, b):
    """vaegan's training step (src/model/vaegan.rs) for `model` (a vaegan_torch.VAEGAN built
    from `config`) at batch `b`, with every recipe key of the config: the objectives' weights,
    `gan_fakes`, `d_fake_weight`, `decoder_bn_stats`, `latent_mmd`, and `latent_adversary`
    with its latent discriminator (a fourth group at the discriminator's rate). Returns
    step(x) -> (kl, llike, gan_d, pixel BCE) of that step, after updating every group."""
    enc, dec, dis = model.encoder, model.decoder, model.discriminator
    ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
    gamma, w_pix = config["gamma"], config["pixel_weight"]
    w_pix_dec = config.get("pixel_weight_decoder")
    w_pix_dec = w_pix if w_pix_dec is None else w_pix_dec
    kl_weight, d_fake = config.get("kl_weight", 1.0), config.get("d_fake_weight", 1.0)
    fakes = str(config.get("gan_fakes", "both")).lower()
    sees_rec, sees_p = fakes in ("both", "reconstructions"), fakes in ("both", "prior")
    w_mmd = float(config.get("latent_mmd", 0.0))
    w_llike_enc = float(config.get("probe_encoder_llike", 1.0))
    bn_stats = str(config.get("decoder_bn_stats", "both"))
    optim = config["optim"]
    opts = [
        optimizer(optim.get(f"optimizer_{part}", "adam"), net.parameters(), optim[f"lr_{part}"], optim)
        for part, net in (("encoder", enc), ("decoder", dec), ("discriminator", dis))
    ]
    groups = [list(enc.parameters()), list(dec.parameters()), list(dis.parameters())]
    w_adv = float(config.get("latent_adversary", 0.0))
    if w_adv > 0:
        widths = [config["latent"], *config.get("latent_discriminator", [256, 256]), 1]
        layers = []
        for i, (a, o) in enumerate(zip(widths, widths[1:])):
            layers.append(torch.nn.Linear(a, o))
            if i + 2 < len(widths):
                layers.append(vaegan_torch.activation(config["dis_act"]))
        dz = torch.nn.Sequential(*layers)
        opts.append(optimizer(optim.get("optimizer_discriminator", "adam"), dz.parameters(), optim["lr_discriminator"], optim))
        groups.append(list(dz.parameters()))
    dec_bns = [m for m in dec.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    def decode(z, updates_stats):
        # A pass that must not move the running statistics runs with momentum 0, as vaegan's.
        for m in dec_bns:
            m.momentum = 0.1 if updates_stats else 0.0
        out = dec(z)
        for m in dec_bns:
            m.momentum = 0.1
        return out

    def bce(logit, t):
        return F.binary_cross_entropy_with_logits(logit, t, reduction="sum") / b

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
            x_rec = decode(z, bn_stats in ("both", "posterior"))
            x_p = decode(z_p, bn_stats in ("both", "prior"))
            f_real, l_real = dis(x)
            f_rec, l_rec = dis(x_rec)
            _, l_p = dis(x_p)
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        llike = 0.5 * (f_rec.flatten(1) - f_real.flatten(1).detach()).pow(2).sum() / b
        gan_d, gan_g = bce(l_real, ones), 0.0
        for seen, logit in ((sees_rec, l_rec), (sees_p, l_p)):
            if seen:
                gan_d = gan_d + d_fake * bce(logit, zeros)
                gan_g = gan_g + bce(logit, ones)
        # probe_encoder_llike (a probe, not a vaegan key; 1 unless set) weighs Dis_l in the
        # encoder's objective: 0 leaves a pixel-only autoencoder when gamma is 0 too.
        l_enc = kl_weight * kl + w_llike_enc * llike
        l_dec = gamma * llike + gan_g
        if w_mmd > 0:
            l_enc = l_enc + w_mmd * mmd_imq(z, z_p)
        if w_adv > 0:
            logit_z = dz(z)
            l_enc = l_enc + w_adv * bce(logit_z, ones)
            gan_dz = bce(dz(z_p), ones) + bce(logit_z, zeros)
        pixel = F.binary_cross_entropy(x_rec.clamp(1e-7, 1 - 1e-7), x, reduction="sum") / b
        if w_pix > 0 or w_pix_dec > 0:
            l_enc = l_enc + w_pix * pixel
            l_dec = l_dec + w_pix_dec * pixel
        # Each group's gradient from its own objective, as vaegan's graph takes them.
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

    step.optimizers = opts  # for a per-epoch schedule (optim.lr_decay) in the caller
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", help="the model and optimiser config, from `vaegan graph --preset P --config-json FILE`")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    with open(args.config) as f:
        config = json.load(f)
    if str(config.get("mode", "")).lower().replace("_", "-") not in ("vae-gan", "vaegan"):
        sys.exit(f"{args.config}: mode {config.get('mode')!r}: this script times the VAE-GAN step")
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    model = vaegan_torch.VAEGAN(config).train()
    h, w, c = config["image"]
    b = args.batch
    x = (torch.arange(b * c * h * w) * 37 % 256).float().div(255.0).reshape(b, c, h, w)
    step = make_step(config, model, b)

    def step_once():
        step(x)

    for _ in range(args.warmup):
        step_once()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step_once()
    secs = (time.perf_counter() - t0) / args.steps
    result = {"torch": torch.__version__, "threads": args.threads, "batch": b, "ms_per_step": 1e3 * secs, "samples_per_s": b / secs}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"PyTorch {torch.__version__} on the CPU, {args.threads} threads, batch {b}: {b / secs:.1f} samples/s, {1e3 * secs:.1f} ms/step")


if __name__ == "__main__":
    main()
