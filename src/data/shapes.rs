//! A colour data set vaegan makes itself (`vaegan make-dataset shapes`): one coloured shape
//! on a coloured background per image, with every factor controlled and recorded — shape
//! (circle, square, triangle), its colour (6), the background's (4, none of them a shape colour),
//! position, size and rotation — drawn from the seed and the image's index alone, so a set
//! is the same on every machine. Edges are antialiased by 4×4 supersampling. Tests and the
//! README's `celeba64` demo train on it without a download.

use std::path::Path;

use rand::{Rng, SeedableRng};

use super::{DataError, Result};

pub const SHAPES: [&str; 3] = ["circle", "square", "triangle"];
pub const COLOURS: [(&str, [u8; 3]); 6] = [
    ("red", [220, 40, 40]),
    ("green", [40, 180, 70]),
    ("blue", [50, 90, 220]),
    ("yellow", [235, 205, 40]),
    ("magenta", [200, 60, 190]),
    ("cyan", [40, 200, 210]),
];
pub const BACKGROUNDS: [(&str, [u8; 3]); 4] = [("black", [15, 15, 20]), ("grey", [128, 128, 128]), ("white", [240, 240, 235]), ("navy", [20, 30, 90])];

/// The factors of one image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Factors {
    pub shape: usize,
    pub colour: usize,
    pub background: usize,
    /// Centre, as a fraction of the side.
    pub x: f32,
    pub y: f32,
    /// Radius of the circumscribed circle, as a fraction of the side.
    pub size: f32,
    /// Rotation in radians (squares and triangles).
    pub angle: f32,
}

/// Image `index`'s factors under `seed`.
pub fn factors(seed: u64, index: usize) -> Factors {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let shape = rng.random_range(0..SHAPES.len());
    let colour = rng.random_range(0..COLOURS.len());
    let background = rng.random_range(0..BACKGROUNDS.len());
    let size = rng.random_range(0.15..0.32);
    let x = rng.random_range(size..1.0 - size);
    let y = rng.random_range(size..1.0 - size);
    let angle = rng.random_range(0.0..std::f32::consts::TAU);
    Factors { shape, colour, background, x, y, size, angle }
}

/// Whether the point (px, py) (fractions of the side) lies inside the shape.
fn inside(f: &Factors, px: f32, py: f32) -> bool {
    let (dx, dy) = (px - f.x, py - f.y);
    // Into the shape's frame.
    let (c, s) = (f.angle.cos(), f.angle.sin());
    let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
    match f.shape {
        0 => dx * dx + dy * dy <= f.size * f.size,
        1 => {
            let h = f.size / std::f32::consts::SQRT_2;
            u.abs() <= h && v.abs() <= h
        }
        _ => {
            // An equilateral triangle inscribed in the circle of radius size: three
            // half-planes at distance size/2 from the centre.
            (0..3).all(|k| {
                let a = std::f32::consts::FRAC_PI_2 + k as f32 * std::f32::consts::TAU / 3.0;
                u * a.cos() + v * a.sin() >= -f.size / 2.0
            })
        }
    }
}

/// The RGB image (size × size × 3) of `f`.
pub fn render(f: &Factors, size: usize) -> Vec<u8> {
    const SS: usize = 4;
    let (fg, bg) = (COLOURS[f.colour].1, BACKGROUNDS[f.background].1);
    let mut out = vec![0u8; size * size * 3];
    for y in 0..size {
        for x in 0..size {
            let mut hits = 0;
            for sy in 0..SS {
                for sx in 0..SS {
                    let px = (x as f32 + (sx as f32 + 0.5) / SS as f32) / size as f32;
                    let py = (y as f32 + (sy as f32 + 0.5) / SS as f32) / size as f32;
                    hits += inside(f, px, py) as usize;
                }
            }
            let a = hits as f32 / (SS * SS) as f32;
            for k in 0..3 {
                out[(y * size + x) * 3 + k] = (a * fg[k] as f32 + (1.0 - a) * bg[k] as f32).round() as u8;
            }
        }
    }
    out
}

/// Writes `count` images (`shape_00000.png`, …) and `factors.csv` to `dir`, which must be
/// empty or new (nothing already there is overwritten). Returns the files written.
pub fn write(dir: &Path, count: usize, size: usize, seed: u64) -> Result<usize> {
    if count == 0 || !(8..=1024).contains(&size) {
        return Err(DataError::new(dir, format!("{count} images of {size}x{size}: need at least 1 image and a side from 8 to 1024")));
    }
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| DataError::new(dir, format!("cannot list: {e}")))?;
        if entries.next().is_some() {
            return Err(DataError::new(dir, "the folder is not empty: give a new or empty one (nothing is overwritten)"));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| DataError::new(dir, format!("cannot create: {e}")))?;
    let digits = (count.max(2) - 1).to_string().len().max(5);
    let name = |i: usize| format!("shape_{i:0digits$}.png");
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let chunk = count.div_ceil(workers);
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || -> Result<()> {
                    for i in w * chunk..((w + 1) * chunk).min(count) {
                        let path = dir.join(name(i));
                        crate::pictures::write_png(&path, size, size, png::ColorType::Rgb, &render(&factors(seed, i), size))
                            .map_err(|e| DataError::new(&path, format!("cannot write: {e}")))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| DataError::new(dir, "a writer thread panicked"))??;
        }
        Ok(())
    })?;
    let mut csv = String::from("file,shape,colour,background,x,y,size,angle\n");
    for i in 0..count {
        let f = factors(seed, i);
        csv.push_str(&format!(
            "{},{},{},{},{:.4},{:.4},{:.4},{:.4}\n",
            name(i),
            SHAPES[f.shape],
            COLOURS[f.colour].0,
            BACKGROUNDS[f.background].0,
            f.x,
            f.y,
            f.size,
            f.angle
        ));
    }
    let path = dir.join("factors.csv");
    std::fs::write(&path, csv).map_err(|e| DataError::new(&path, format!("cannot write: {e}")))?;
    Ok(count)
}
