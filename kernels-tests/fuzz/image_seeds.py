"""Writes the `image` fuzz target's seeds with Pillow (pip install pillow): small PNGs of every
colour type and bit depth the folder loader accepts, an interlaced one, and baseline, progressive
and greyscale JPEGs, all of one generated picture (a shape on a background).

    python3 kernels-tests/fuzz/image_seeds.py
"""

import io
import os

from PIL import Image, ImageDraw

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "image")


def picture(size=(12, 9)):
    im = Image.new("RGB", size, (40, 40, 120))
    ImageDraw.Draw(im).ellipse((2, 1, 9, 7), fill=(220, 30, 30))
    return im


def save(name, im, **kw):
    buf = io.BytesIO()
    im.save(buf, **kw)
    with open(os.path.join(OUT, f"seed-{name}"), "wb") as f:
        f.write(buf.getvalue())


def main():
    os.makedirs(OUT, exist_ok=True)
    rgb = picture()
    save("rgb.png", rgb, format="PNG")
    save("rgba.png", rgb.convert("RGBA"), format="PNG")
    save("grey.png", rgb.convert("L"), format="PNG")
    save("grey-alpha.png", rgb.convert("LA"), format="PNG")
    save("palette.png", rgb.convert("P"), format="PNG")
    save("bilevel.png", rgb.convert("1"), format="PNG")
    save("grey16.png", rgb.convert("I;16"), format="PNG")
    save("interlaced.png", rgb, format="PNG", interlace=1)
    save("baseline.jpg", rgb, format="JPEG", quality=80)
    save("progressive.jpg", rgb, format="JPEG", quality=80, progressive=True)
    save("grey.jpg", rgb.convert("L"), format="JPEG", quality=80)
    save("subsampled.jpg", picture((17, 23)), format="JPEG", quality=50, subsampling=2)


if __name__ == "__main__":
    main()
