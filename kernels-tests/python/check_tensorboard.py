"""Reads a run folder's TensorBoard events with TensorBoard's own reader (run by
kernels-tests/export.rs, not by hand):

    check_tensorboard.py RUN_DIR EXPECTED.json

EXPECTED.json: {"losses": [names], "loss_steps": [steps], "epoch_steps": [steps]}: the
losses.csv columns and steps, and the step at each epoch's end (metrics.csv). Checks
every loss tag holds exactly those steps (none twice, so a resumed run did not repeat
any), the test metrics and both grids are at each epoch's end, and the config is there as
text. Prints what it found.
"""

import json
import sys

from tensorboard.backend.event_processing import event_accumulator as ea


def main(run, expected_path):
    expected = json.load(open(expected_path))
    acc = ea.EventAccumulator(run, size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    print("tags:", {k: v for k, v in tags.items() if v})
    for name in expected["losses"]:
        steps = [e.step for e in acc.Scalars(f"loss/{name}")]
        if steps != expected["loss_steps"]:
            sys.exit(f"loss/{name}: steps {steps}, expected {expected['loss_steps']}")
    for tag in ["test/nelbo", "test/kl", "test/mse", "epoch/samples_per_s"]:
        steps = [e.step for e in acc.Scalars(tag)]
        if steps != expected["epoch_steps"]:
            sys.exit(f"{tag}: steps {steps}, expected {expected['epoch_steps']}")
    for tag in ["samples", "reconstructions"]:
        images = acc.Images(tag)
        if [e.step for e in images] != expected["epoch_steps"]:
            sys.exit(f"{tag}: steps {[e.step for e in images]}, expected {expected['epoch_steps']}")
        if not all(e.encoded_image_string.startswith(b"\x89PNG") and e.width > 0 and e.height > 0 for e in images):
            sys.exit(f"{tag}: not PNG images")
    config = acc.Tensors("config")
    if len(config) != 1 or b"[model]" not in config[0].tensor_proto.string_val[0]:
        sys.exit(f"config: {len(config)} text events, expected one holding the TOML")
    print(f"{len(expected['losses'])} losses at {len(expected['loss_steps'])} steps, metrics and grids at steps {expected['epoch_steps']}, config text: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
