"""Round trips of `vaegan export` (run by kernels-tests/export.rs, not by hand):

    check_export.py DIR

DIR holds, from one checkpoint: `encoder.onnx`, `decoder.onnx`, `discriminator.onnx`
(if the model has one), `all.safetensors` (--format torch --part all),
`decoder.safetensors` (--format torch --part decoder), `raw.safetensors`
(`vaegan sample --raw`: z and the engine's images) and `probe.safetensors` (test images
and the engine's mu, logvar, features and logits on them, written by the Rust test).

Checks: each ONNX model passes onnx.checker; onnxruntime reproduces the engine within
1e-4 and PyTorch (docs/vaegan_torch.py) within 1e-5, both as |a - b| <= tol * max(1, |b|),
at batch sizes other than the export's (the batch is dynamic). Prints one line per check.
"""

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "docs"))
import vaegan_torch  # noqa: E402

ONNX_TOL, TORCH_TOL = 1e-4, 1e-5


def close(what, got, want, tol):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        sys.exit(f"{what}: shape {got.shape}, expected {want.shape}")
    if not np.all(np.isfinite(got)):
        sys.exit(f"{what}: holds NaN or infinity")
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    worst = float(err.max())
    print(f"{what}: worst {worst:.2e} (tolerance {tol:.0e}) over {got.size} values")
    if worst > tol:
        i = np.unravel_index(err.argmax(), err.shape)
        sys.exit(f"{what}: {got[i]} against {want[i]} at {i}")


def main(d):
    raw = load_file(os.path.join(d, "raw.safetensors"))
    probe = load_file(os.path.join(d, "probe.safetensors"))
    parts = ["encoder", "decoder"] + (["discriminator"] if os.path.exists(os.path.join(d, "discriminator.onnx")) else [])
    sessions = {}
    for part in parts:
        path = os.path.join(d, f"{part}.onnx")
        onnx.checker.check_model(onnx.load(path), full_check=True)
        sessions[part] = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        print(f"{part}.onnx: onnx.checker passed; inputs {[i.name for i in sessions[part].get_inputs()]}, outputs {[o.name for o in sessions[part].get_outputs()]}")

    everything = vaegan_torch.load(os.path.join(d, "all.safetensors"))
    decoder = vaegan_torch.load(os.path.join(d, "decoder.safetensors"))
    assert isinstance(decoder, vaegan_torch.Decoder), type(decoder)
    assert sorted(everything.config) == sorted(decoder.config)

    z, images = raw["z"], raw["images"]
    # A conditioned model: the labels `vaegan sample` decoded with, and the probe's for D.
    dec_in = {"z": z, **({"labels": raw["labels"]} if "labels" in raw else {})}
    dec_args = [torch.from_numpy(v) for v in dec_in.values()]
    dis_in = {"images": probe["images"], **({"labels": probe["labels"]} if "labels" in probe else {})}
    dis_args = [torch.from_numpy(v) for v in dis_in.values()]
    # Constant or saturated outputs would make the comparison say little.
    if float(np.std(images)) < 1e-3 or float(np.mean((np.abs(images) > 0.999) | (np.abs(images) < 1e-3))) > 0.5:
        sys.exit(f"the engine's images are nearly constant or saturated (std {np.std(images):.2e}): a degenerate test model")
    close("decoder, onnxruntime vs engine", sessions["decoder"].run(["images"], dec_in)[0], images, ONNX_TOL)
    with torch.no_grad():
        close("decoder, pytorch vs engine", decoder(*dec_args).numpy(), images, TORCH_TOL)
        close("decoder (--part all), pytorch vs engine", everything.decoder(*dec_args).numpy(), images, TORCH_TOL)
    # The batch is dynamic: one latent code alone decodes to the same image.
    close("decoder at batch 1, onnxruntime vs engine", sessions["decoder"].run(["images"], {k: v[:1] for k, v in dec_in.items()})[0], images[:1], ONNX_TOL)
    if "labels" in dec_in:
        # Other labels, the same codes: other images (the labels are read).
        flipped = dict(dec_in, labels=1.0 - dec_in["labels"])
        moved = float(np.abs(sessions["decoder"].run(["images"], flipped)[0] - images).max())
        if moved < 1e-4:
            sys.exit(f"the exported decoder ignores its labels (images moved by {moved:.1e})")
        try:
            decoder(torch.from_numpy(z))
            sys.exit("a conditioned pytorch decoder ran without labels")
        except ValueError as e:
            print(f"labels required: {e}")

    x = probe["images"]
    mu, logvar = sessions["encoder"].run(["mu", "logvar"], {"images": x})
    close("encoder mu, onnxruntime vs engine", mu, probe["mu"], ONNX_TOL)
    close("encoder logvar, onnxruntime vs engine", logvar, probe["logvar"], ONNX_TOL)
    with torch.no_grad():
        mu, logvar = everything.encoder(torch.from_numpy(x))
    close("encoder mu, pytorch vs engine", mu.numpy(), probe["mu"], TORCH_TOL)
    close("encoder logvar, pytorch vs engine", logvar.numpy(), probe["logvar"], TORCH_TOL)
    if "discriminator" in sessions:
        features, logits = sessions["discriminator"].run(["features", "logits"], dis_in)
        close("discriminator features, onnxruntime vs engine", features, probe["features"], ONNX_TOL)
        close("discriminator logits, onnxruntime vs engine", logits, probe["logits"], ONNX_TOL)
        with torch.no_grad():
            features, logits = everything.discriminator(*dis_args)
        close("discriminator features, pytorch vs engine", features.numpy(), probe["features"], TORCH_TOL)
        close("discriminator logits, pytorch vs engine", logits.numpy(), probe["logits"], TORCH_TOL)

    # A file whose config names another model is refused, naming the file.
    tampered = os.path.join(d, "tampered.safetensors")
    from safetensors.torch import load_file as load_torch, save_file

    other = dict(decoder.config, latent=decoder.config["latent"] + 1)
    import json

    save_file(load_torch(os.path.join(d, "decoder.safetensors")), tampered, metadata={"format": vaegan_torch.FORMAT, "config": json.dumps(other), "parts": "decoder", "step": "0"})
    try:
        vaegan_torch.load(tampered)
        sys.exit("a torch export whose config does not match its weights loaded")
    except ValueError as e:
        assert "tampered.safetensors" in str(e) and "do not fit" in str(e), e
        print(f"mismatched config refused: {str(e)[:100]}...")
    try:
        vaegan_torch.load(os.path.join(d, "raw.safetensors"))
        sys.exit("a file that is not a torch export loaded")
    except ValueError as e:
        assert "not a `vaegan export --format torch` file" in str(e), e
        print("foreign safetensors refused")
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
