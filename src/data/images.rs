//! A folder of PNG images as a data set.
//!
//! The rule: every `.png` in the folder (not recursive), in name order; grey as is, RGB(A)
//! to grey by Rec. 601 luma (0.299 R + 0.587 G + 0.114 B, alpha ignored); all images must
//! share one size; each is centre-cropped to a square of its shorter side, then resampled
//! to `size`×`size` by area averaging (each output pixel is the mean of the source area
//! it covers, fractional pixels weighted). 10 % of the images (at least 1), chosen by the
//! seed, are held out as the test set.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::{DataError, Dataset, Result, Split};

/// Images larger than this (in pixels) are refused before decoding.
pub const MAX_PIXELS: u64 = 1 << 26;

/// Decodes one PNG to grey levels: (width, height, pixels).
pub fn read_png_grey(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let file = std::fs::File::open(path).map_err(|e| DataError::new(path, format!("cannot open: {e}")))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    decoder.set_limits(png::Limits { bytes: (MAX_PIXELS * 4) as usize });
    let mut reader = decoder.read_info().map_err(|e| DataError::new(path, format!("not a readable PNG: {e}")))?;
    let (w, h) = (reader.info().width as u64, reader.info().height as u64);
    if w == 0 || h == 0 {
        return Err(DataError::new(path, format!("zero-sized image ({w}x{h})")));
    }
    if w * h > MAX_PIXELS {
        return Err(DataError::new(path, format!("declared size {w}x{h} exceeds the limit of {MAX_PIXELS} pixels")));
    }
    let size = reader.output_buffer_size().ok_or_else(|| DataError::new(path, "image too large to decode"))?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(|e| DataError::new(path, format!("corrupt PNG data: {e}")))?;
    let channels = info.color_type.samples();
    let px = &buf[..info.buffer_size()];
    let grey: Vec<u8> = match channels {
        1 | 2 => px.chunks(channels).map(|c| c[0]).collect(),
        3 | 4 => px.chunks(channels).map(|c| (0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32).round().clamp(0.0, 255.0) as u8).collect(),
        n => return Err(DataError::new(path, format!("{n} channels: expected grey, grey+alpha, RGB or RGBA"))),
    };
    Ok((info.width as usize, info.height as usize, grey))
}

/// Weights of 1-D area resampling from `n_in` to `n_out` samples: for each output sample,
/// (input index, weight) pairs summing to 1.
fn area_weights(n_in: usize, n_out: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let (lo, hi) = (o as f64 * scale, (o + 1) as f64 * scale);
            let mut w = vec![];
            let mut i = lo.floor() as usize;
            while (i as f64) < hi && i < n_in {
                let overlap = (hi.min(i as f64 + 1.0) - lo.max(i as f64)).max(0.0);
                if overlap > 0.0 {
                    w.push((i, (overlap / scale) as f32));
                }
                i += 1;
            }
            w
        })
        .collect()
}

/// Centre-crop to a square, then area-resample to size×size.
pub fn resize_grey(width: usize, height: usize, px: &[u8], size: usize) -> Vec<u8> {
    let side = width.min(height);
    let (x0, y0) = ((width - side) / 2, (height - side) / 2);
    let w = area_weights(side, size);
    let mut out = vec![0u8; size * size];
    for (oy, wy) in w.iter().enumerate() {
        for (ox, wx) in w.iter().enumerate() {
            let mut s = 0.0f32;
            for &(iy, ay) in wy {
                for &(ix, ax) in wx {
                    s += ay * ax * px[(y0 + iy) * width + x0 + ix] as f32;
                }
            }
            out[oy * size + ox] = s.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Loads every PNG of `dir` by the rule above.
pub fn load_folder(dir: &Path, size: usize, seed: u64) -> Result<Split> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::new(dir, format!("cannot list: {e}")))?;
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("png"))).collect();
    files.sort();
    if files.len() < 2 {
        return Err(DataError::new(dir, format!("{} PNG images: need IDX files or at least 2 PNG images", files.len())));
    }
    let mut first: Option<(usize, usize, String)> = None;
    let mut images = Vec::with_capacity(files.len() * size * size);
    for f in &files {
        let (w, h, px) = read_png_grey(f)?;
        match &first {
            None => first = Some((w, h, f.display().to_string())),
            Some((fw, fh, name)) if (*fw, *fh) != (w, h) => {
                return Err(DataError::new(f, format!("image is {w}x{h} but {name} is {fw}x{fh}: all images in a folder must share one size")));
            }
            _ => {}
        }
        images.extend(resize_grey(w, h, &px, size));
    }
    let n = files.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let n_test = (n / 10).max(1);
    let pick = |ids: &[usize]| -> Dataset {
        let mut px = Vec::with_capacity(ids.len() * size * size);
        for &i in ids {
            px.extend_from_slice(&images[i * size * size..(i + 1) * size * size]);
        }
        Dataset { images: px, labels: None, count: ids.len(), height: size, width: size, source: dir.display().to_string() }
    };
    let (test_ids, train_ids) = order.split_at(n_test);
    Ok(Split { train: pick(train_ids), test: pick(test_ids) })
}
