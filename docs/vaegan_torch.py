"""vaegan's networks as PyTorch modules, for checkpoints written by
`vaegan export --format torch`.

    import vaegan_torch
    decoder = vaegan_torch.load("decoder.safetensors")   # an nn.Module in eval mode
    images = decoder(torch.randn(16, decoder.config["latent"]))  # 16 x C x H x W

A file of one part (`--part decoder`) loads as that network; `--part all` as a `VAEGAN`
with `.encoder`, `.decoder` and `.discriminator`. The modules build themselves from the
model config stored in the file, so any preset or TOML config loads; their state dict
names are the file's, so `load_state_dict` takes it unchanged (`load` does exactly that,
strictly). Images are N x C x H x W in the output activation's range (tanh: [-1, 1],
sigmoid: [0, 1]); dense layers read and write them flattened in C*H*W order
(`nn.Flatten`, `nn.Unflatten`), as the export permuted their weights to.

What vaegan's `src/model/conv.rs` builds, layer for layer:
- encoder: [conv (stride 2) -> batch norm -> act] per `encoder` channel count, flatten,
  [dense -> batch norm -> act] per `encoder_dense` width, then the `mu` and `logvar` heads
  (the MLP: dense layers `0`, `1`, ... with the hidden activation, then the heads);
- decoder: dense to (h/2^n)*(w/2^n)*decoder[0] -> batch norm -> act, unflatten,
  [transposed conv (stride 2) -> batch norm -> act] per `decoder` entry, then a stride-1
  conv `out` with the output activation (`decoder_final_conv`), or the last transposed conv
  writes the image itself;
- discriminator: conv0 (stride `dis_first_stride`, no batch norm) -> act, then
  [conv (stride 2) -> batch norm -> act]; `features` is the last conv's raw output (the
  learned similarity of L_llike); flatten, [dense -> batch norm -> act], the logit `out`.
Layers followed by batch norm have no bias.
"""

import json

import torch
from torch import nn

FORMAT = "vaegan-torch-1"


def activation(name):
    """vaegan's activation names ("relu", "leaky_relu(0.2)", "tanh", "sigmoid", "none")."""
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name in ("none", "identity", "linear"):
        return nn.Identity()
    if name.startswith("leaky_relu"):
        slope = float(name[len("leaky_relu(") : -1]) if "(" in name else 0.2
        return nn.LeakyReLU(slope)
    raise ValueError(f"unknown activation {name!r}")


def _pad(config):
    return (config["kernel"] - 1) // 2


def _with_bn(layer, bn):
    # vaegan names a layer's batch norm under the layer: "conv1.bn.running_mean".
    layer.bn = bn
    return layer


def _block(layer, x, side=None):
    """A layer, plus `side` (a conditioned layer's labels times their weight), then its
    batch norm if it has one (before the activation)."""
    x = layer(x)
    if side is not None:
        x = x + side
    return layer.bn(x) if hasattr(layer, "bn") else x


def _labels(module, labels):
    """A conditioned network's y·V (added to its first dense layer), or None. A conditioned
    network needs its labels (N x number of labels, 1 where the image has the label)."""
    if not hasattr(module, "condition"):
        if labels is not None:
            raise ValueError("labels given to a model that is not conditioned")
        return None
    if labels is None:
        raise ValueError(f"the model is conditioned on {module.config['conditions']}: pass labels")
    return module.condition(labels)


class Encoder(nn.Module):
    """images (N x C x H x W) -> (mu, logvar), each N x latent."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        h, w, c = config["image"]
        self.act = activation(config["hidden_act"])
        self.conv = config["arch"] == "conv"
        self.trunk = []
        if self.conv:
            k, side, ch = config["kernel"], (h, w), c
            for i, out in enumerate(config["encoder"]):
                layer = nn.Conv2d(ch, out, k, stride=2, padding=_pad(config), bias=False)
                self.add_module(f"conv{i}", _with_bn(layer, nn.BatchNorm2d(out)))
                self.trunk.append(f"conv{i}")
                side = ((side[0] + 2 * _pad(config) - k) // 2 + 1, (side[1] + 2 * _pad(config) - k) // 2 + 1)
                ch = out
            width = side[0] * side[1] * ch
            for i, out in enumerate(config["encoder_dense"]):
                self.add_module(f"dense{i}", _with_bn(nn.Linear(width, out, bias=False), nn.BatchNorm1d(out)))
                self.trunk.append(f"dense{i}")
                width = out
        else:
            width = config["input"]
            for i, out in enumerate(config["encoder"]):
                self.add_module(str(i), nn.Linear(width, out))
                self.trunk.append(str(i))
                width = out
        self.mu = nn.Linear(width, config["latent"])
        self.logvar = nn.Linear(width, config["latent"])

    def forward(self, images):
        x = images
        for name in self.trunk:
            layer = getattr(self, name)
            if isinstance(layer, nn.Linear):
                x = x.flatten(1)
            x = self.act(_block(layer, x))
        x = x.flatten(1)
        return self.mu(x), self.logvar(x)


class Decoder(nn.Module):
    """z (N x latent) and, for a conditioned model, labels (N x labels) -> images (N x C x H x W)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        h, w, c = config["image"]
        self.act = activation(config["hidden_act"])
        self.out_act = activation(config["output_act"])
        self.conv = config["arch"] == "conv"
        self.layers = []
        if self.conv:
            k, chans, n = config["kernel"], config["decoder"], len(config["decoder"])
            self.first = (chans[0], h >> n, w >> n)
            self.dense = _with_bn(nn.Linear(config["latent"], chans[0] * (h >> n) * (w >> n), bias=False), nn.BatchNorm1d(chans[0] * (h >> n) * (w >> n)))
            first = chans[0] * (h >> n) * (w >> n)
            ch = chans[0]
            for i in range(n):
                last_to_image = not config["decoder_final_conv"] and i + 1 == n
                out = chans[i] if config["decoder_final_conv"] else (c if last_to_image else chans[i + 1])
                layer = nn.ConvTranspose2d(ch, out, k, stride=2, padding=_pad(config), output_padding=1, bias=last_to_image)
                if not last_to_image:
                    layer = _with_bn(layer, nn.BatchNorm2d(out))
                self.add_module(f"deconv{i}", layer)
                self.layers.append(f"deconv{i}")
                ch = out
            if config["decoder_final_conv"]:
                self.out = nn.Conv2d(ch, c, k, stride=1, padding=_pad(config))
                self.layers.append("out")
        else:
            widths = [config["latent"], *config["decoder"], config["input"]]
            for i in range(len(widths) - 1):
                self.add_module(str(i), nn.Linear(widths[i], widths[i + 1]))
                self.layers.append(str(i))
            first = widths[1]
        if config.get("conditions"):
            self.condition = nn.Linear(len(config["conditions"]), first, bias=False)

    def forward(self, z, labels=None):
        h, w, c = self.config["image"]
        x, side = z, _labels(self, labels)
        if self.conv:
            x = self.act(_block(self.dense, x, side)).unflatten(1, self.first)
            side = None
        for i, name in enumerate(self.layers):
            x = _block(getattr(self, name), x, side if i == 0 else None)
            x = self.out_act(x) if i + 1 == len(self.layers) else self.act(x)
        return x.reshape(x.shape[0], c, h, w)


class Discriminator(nn.Module):
    """images (N x C x H x W) and, for a conditioned model, labels (N x labels) -> (features,
    logits N x 1)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        h, w, c = config["image"]
        self.act = activation(config["dis_act"])
        self.conv = config["arch"] == "conv"
        self.convs, self.dense = [], []
        if self.conv:
            k, p, side, ch = config["kernel"], _pad(config), (h, w), c
            for i, out in enumerate(config["discriminator"]):
                stride = config["dis_first_stride"] if i == 0 else 2
                layer = nn.Conv2d(ch, out, k, stride=stride, padding=p, bias=(i == 0))
                if i > 0:
                    layer = _with_bn(layer, nn.BatchNorm2d(out))
                self.add_module(f"conv{i}", layer)
                self.convs.append(f"conv{i}")
                side = ((side[0] + 2 * p - k) // stride + 1, (side[1] + 2 * p - k) // stride + 1)
                ch = out
            width = side[0] * side[1] * ch
            for i, out in enumerate(config["discriminator_dense"]):
                self.add_module(f"dense{i}", _with_bn(nn.Linear(width, out, bias=False), nn.BatchNorm1d(out)))
                self.dense.append(f"dense{i}")
                width = out
        else:
            width = config["input"]
            for i, out in enumerate(config["discriminator"]):
                self.add_module(str(i), nn.Linear(width, out))
                self.dense.append(str(i))
                width = out
        if config.get("conditions"):
            first = (config["discriminator_dense"] if self.conv else config["discriminator"])[0]
            self.condition = nn.Linear(len(config["conditions"]), first, bias=False)
        self.out = nn.Linear(width, 1)

    def forward(self, images, labels=None):
        x, features, side = images, None, _labels(self, labels)
        for name in self.convs:
            layer = getattr(self, name)
            features = x = layer(x)
            if hasattr(layer, "bn"):
                x = layer.bn(x)
            x = self.act(x)
        x = x.flatten(1)
        for i, name in enumerate(self.dense):
            x = self.act(_block(getattr(self, name), x, side if i == 0 else None))
        if not self.conv:
            features = x
        return features, self.out(x)


class VAEGAN(nn.Module):
    """The networks of one model, as `--part all` exports them."""

    def __init__(self, config, parts=("encoder", "decoder", "discriminator")):
        super().__init__()
        self.config = config
        for part in parts:
            self.add_module(part, PARTS[part](config))


PARTS = {"encoder": Encoder, "decoder": Decoder, "discriminator": Discriminator}


def load(path, device="cpu"):
    """The module(s) of a `vaegan export --format torch` file, weights loaded, in eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: metadata format is {meta.get('format')!r}, expected {FORMAT!r}: not a `vaegan export --format torch` file")
    config = json.loads(meta["config"])
    parts = meta["parts"].split(",")
    module = PARTS[parts[0]](config) if len(parts) == 1 else VAEGAN(config, parts)
    state = load_file(str(path), device=device)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit the {meta['parts']} of its config: {e}") from e
    return module.to(device).eval()
