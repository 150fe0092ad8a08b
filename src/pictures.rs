//! Pictures a user looks at: grids of images and loss curves, as PNG. Text is drawn with
//! the public-domain 8×8 bitmap font of `font8x8`, so no font files are needed.

use std::path::Path;

use font8x8::UnicodeFonts;

/// An RGB canvas.
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<[u8; 3]>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: [u8; 3]) -> Self {
        Canvas { width, height, pixels: vec![background; width * height] }
    }

    pub fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = c;
        }
    }

    /// A line by Bresenham's algorithm.
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut e) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * e;
            if e2 >= dy {
                e += dy;
                x += sx;
            }
            if e2 <= dx {
                e += dx;
                y += sy;
            }
        }
    }

    /// Text with its top-left corner at (x, y), 8 pixels per character.
    pub fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS.get(ch).or_else(|| font8x8::BASIC_FONTS.get('?')).unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.set(x + (i * 8 + col) as i64, y + row as i64, c);
                    }
                }
            }
        }
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let data: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        write_png(path, self.width, self.height, png::ColorType::Rgb, &data)
    }
}

pub fn write_png(path: &Path, width: usize, height: usize, color: png::ColorType, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("png.tmp");
    let file = std::fs::File::create(&tmp)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer.write_image_data(data).map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)?;
    std::fs::rename(tmp, path)
}

/// (width, height, channels) of PNG bytes (channels 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA).
pub fn png_size(bytes: &[u8]) -> std::io::Result<(u32, u32, u32)> {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().map_err(std::io::Error::other)?;
    let info = reader.info();
    Ok((info.width, info.height, info.color_type.samples() as u32))
}

/// A grid of images (values in [0, 1], n × h × w × c with c = 1 grey or 3 RGB, channels
/// interleaved) with `cols` per row, 2-pixel gaps.
pub fn grid_png(path: &Path, images: &[f32], n: usize, shape: [usize; 3], cols: usize) -> std::io::Result<()> {
    let (width, height, px) = grid_pixels(images, n, shape, cols);
    let colour = if shape[2] == 3 { png::ColorType::Rgb } else { png::ColorType::Grayscale };
    write_png(path, width, height, colour, &px)
}

/// The pixels of `grid_png`'s picture: (width, height, bytes with the images' channels).
pub fn grid_pixels(images: &[f32], n: usize, [h, w, c]: [usize; 3], cols: usize) -> (usize, usize, Vec<u8>) {
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols);
    let gap = 2;
    let (width, height) = (cols * (w + gap) + gap, rows * (h + gap) + gap);
    let mut px = vec![40u8; width * height * c];
    for i in 0..n {
        let (r, col) = (i / cols, i % cols);
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let v = images[((i * h + y) * w + x) * c + ch];
                    px[((gap + r * (h + gap) + y) * width + gap + col * (w + gap) + x) * c + ch] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
    }
    (width, height, px)
}

/// Originals beside their reconstructions: pairs (original, reconstruction), `per_row` pairs a row.
pub fn pairs_png(path: &Path, originals: &[f32], recons: &[f32], n: usize, shape: [usize; 3], per_row: usize) -> std::io::Result<()> {
    let dim = shape.iter().product::<usize>();
    let mut interleaved = Vec::with_capacity(2 * n * dim);
    for i in 0..n {
        interleaved.extend_from_slice(&originals[i * dim..(i + 1) * dim]);
        interleaved.extend_from_slice(&recons[i * dim..(i + 1) * dim]);
    }
    grid_png(path, &interleaved, 2 * n, shape, 2 * per_row)
}

const COLOURS: [[u8; 3]; 8] = [[31, 119, 180], [214, 39, 40], [44, 160, 44], [255, 127, 14], [148, 103, 189], [140, 86, 75], [227, 119, 194], [23, 190, 207]];

/// One panel per series (step on x, value on y), stacked, each titled with its name and
/// its last value, its y range written at the axis.
pub fn curves_png(path: &Path, series: &[(String, Vec<(f64, f64)>)]) -> std::io::Result<()> {
    let (pw, ph, margin) = (720usize, 150usize, 70usize);
    let n = series.len().max(1);
    let mut canvas = Canvas::new(pw + margin + 20, n * (ph + 40) + 10, [255, 255, 255]);
    for (k, (name, points)) in series.iter().enumerate() {
        let top = (k * (ph + 40) + 28) as i64;
        let left = margin as i64;
        let colour = COLOURS[k % COLOURS.len()];
        let finite: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        let last = finite.last().map(|p| format!("{:.4}", p.1)).unwrap_or_else(|| "-".into());
        canvas.text(left, top - 20, &format!("{name}  (last {last})"), [0, 0, 0]);
        let (right, bottom) = (left + pw as i64, top + ph as i64);
        for (a, b) in [((left, top), (right, top)), ((left, bottom), (right, bottom)), ((left, top), (left, bottom)), ((right, top), (right, bottom))] {
            canvas.line(a, b, [160, 160, 160]);
        }
        if finite.len() < 2 {
            continue;
        }
        let (x0, x1) = finite.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (mut y0, mut y1) = finite.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        if y1 - y0 < 1e-12 {
            y0 -= 0.5;
            y1 += 0.5;
        }
        canvas.text(2, top, &format!("{:.3}", y1), [90, 90, 90]);
        canvas.text(2, bottom - 8, &format!("{:.3}", y0), [90, 90, 90]);
        canvas.text(left, bottom + 4, &format!("step {:.0}", x0), [90, 90, 90]);
        let end = format!("{:.0}", x1);
        canvas.text(right - 8 * end.len() as i64, bottom + 4, &end, [90, 90, 90]);
        let to_px = |(x, y): (f64, f64)| {
            let fx = if x1 > x0 { (x - x0) / (x1 - x0) } else { 0.0 };
            (left + (fx * pw as f64) as i64, bottom - ((y - y0) / (y1 - y0) * ph as f64) as i64)
        };
        for pair in finite.windows(2) {
            canvas.line(to_px(pair[0]), to_px(pair[1]), colour);
        }
    }
    canvas.save(path)
}
