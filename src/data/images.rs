//! A folder of PNG and JPEG images as a data set.
//!
//! The rule: every `.png`, `.jpg` and `.jpeg` under the folder (searched recursively,
//! hidden entries skipped), in path order; each decoded to 8-bit grey or RGB (alpha
//! dropped; RGB to grey by Rec. 601 luma 0.299 R + 0.587 G + 0.114 B; grey to RGB by
//! copying), cropped (`Crop`), then resampled to the target size by area averaging (each
//! output pixel is the mean of the source area it covers, fractional pixels weighted).
//! Images may differ in size. 10 % of them (at least 1), chosen by the seed, are held out
//! as the test set. Decoding runs on every core; `cache.rs` keeps the result.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::{DataError, Dataset, Result, Split};

/// Images larger than this (in pixels) are refused before decoding.
pub const MAX_PIXELS: u64 = 1 << 26;

/// Which part of each image is kept before resampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crop {
    /// The largest centred region with the target's aspect ratio.
    Centre,
    /// Larsen et al.'s CelebA crop (`dataset/celeba.py` of andersbll/autoencoding_beyond_pixels:
    /// `bbox=(40, 218-30, 15, 178-15)`): rows 40..188 and columns 15..163 of the aligned
    /// 178×218 images, a 148×148 square around the face. Other sizes are refused.
    Larsen,
}

impl std::str::FromStr for Crop {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "centre" | "center" => Ok(Crop::Centre),
            "larsen" | "celeba" => Ok(Crop::Larsen),
            _ => Err(format!("unknown crop {s:?}: expected centre or larsen")),
        }
    }
}

impl std::fmt::Display for Crop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Crop::Centre => "centre",
            Crop::Larsen => "larsen",
        })
    }
}

/// How a folder's images become a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageOptions {
    pub height: usize,
    pub width: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    pub crop: Crop,
}

impl ImageOptions {
    /// Grey square images with the centre crop.
    pub fn grey(size: usize) -> Self {
        ImageOptions { height: size, width: size, channels: 1, crop: Crop::Centre }
    }

    pub fn dim(&self) -> usize {
        self.height * self.width * self.channels
    }
}

/// A decoded image: 8-bit samples, `channels` interleaved.
pub struct Decoded {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|x| x.to_str()).is_some_and(|x| ["png", "jpg", "jpeg"].iter().any(|e| x.eq_ignore_ascii_case(e)))
}

/// Every image file under `dir`, recursively, in path order (hidden files and folders,
/// such as a cache, are skipped).
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| DataError::new(&d, format!("cannot list: {e}")))?;
        for e in entries {
            let e = e.map_err(|e| DataError::new(&d, format!("cannot list: {e}")))?;
            let path = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = e.file_type().map_err(|err| DataError::new(&path, format!("cannot stat: {err}")))?;
            if kind.is_dir() || (kind.is_symlink() && path.is_dir()) {
                stack.push(path);
            } else if is_image(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Decodes a PNG or JPEG file (by its first bytes, not its name).
pub fn decode(path: &Path) -> Result<Decoded> {
    let bytes = std::fs::read(path).map_err(|e| DataError::new(path, format!("cannot read: {e}")))?;
    decode_bytes(path, &bytes)
}

/// `decode` of a file's bytes (`path` names it in errors).
pub fn decode_bytes(path: &Path, bytes: &[u8]) -> Result<Decoded> {
    if bytes.starts_with(&[0x89, b'P', b'N', b'G']) {
        decode_png(path, bytes)
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        decode_jpeg(path, bytes)
    } else {
        Err(DataError::new(path, "neither a PNG nor a JPEG file (unrecognised signature)"))
    }
}

fn decode_png(path: &Path, bytes: &[u8]) -> Result<Decoded> {
    // The declared size first, from the IHDR chunk that must open the file (after the 8-byte
    // signature: length, "IHDR", width, height), before the decoder reads or allocates.
    if bytes.len() >= 24 && &bytes[12..16] == b"IHDR" {
        let be = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as u64;
        check_size(path, be(16), be(20))?;
    }
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    decoder.set_limits(png::Limits { bytes: (MAX_PIXELS * 4) as usize });
    let mut reader = decoder.read_info().map_err(|e| DataError::new(path, format!("not a readable PNG: {e}")))?;
    let (w, h) = (reader.info().width as u64, reader.info().height as u64);
    check_size(path, w, h)?;
    let size = reader.output_buffer_size().ok_or_else(|| DataError::new(path, "image too large to decode"))?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(|e| DataError::new(path, format!("corrupt PNG data: {e}")))?;
    let channels = info.color_type.samples();
    buf.truncate(info.buffer_size());
    // Alpha is dropped: grey+alpha → grey, RGBA → RGB.
    let (pixels, channels) = match channels {
        1 | 3 => (buf, channels),
        2 | 4 => (buf.chunks(channels).flat_map(|c| c[..channels - 1].to_vec()).collect(), channels - 1),
        n => return Err(DataError::new(path, format!("{n} channels: expected grey, grey+alpha, RGB or RGBA"))),
    };
    Ok(Decoded { width: info.width as usize, height: info.height as usize, channels, pixels })
}

fn decode_jpeg(path: &Path, bytes: &[u8]) -> Result<Decoded> {
    use zune_jpeg::zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB).set_max_width(1 << 16).set_max_height(1 << 16);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| DataError::new(path, format!("not a readable JPEG: {e:?}")))?;
    let (w, h) = decoder.dimensions().ok_or_else(|| DataError::new(path, "JPEG without dimensions"))?;
    check_size(path, w as u64, h as u64)?;
    let pixels = decoder.decode().map_err(|e| DataError::new(path, format!("corrupt JPEG data: {e:?}")))?;
    if pixels.len() != w * h * 3 {
        return Err(DataError::new(path, format!("JPEG decoded to {} bytes, expected {w}x{h}x3", pixels.len())));
    }
    Ok(Decoded { width: w, height: h, channels: 3, pixels })
}

fn check_size(path: &Path, w: u64, h: u64) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(DataError::new(path, format!("zero-sized image ({w}x{h})")));
    }
    if w * h > MAX_PIXELS {
        return Err(DataError::new(path, format!("declared size {w}x{h} exceeds the limit of {MAX_PIXELS} pixels")));
    }
    Ok(())
}

/// The samples converted to `channels` (1 or 3).
fn convert(d: Decoded, channels: usize) -> Decoded {
    let pixels = match (d.channels, channels) {
        (a, b) if a == b => d.pixels,
        (3, 1) => d.pixels.chunks(3).map(|c| (0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32).round().clamp(0.0, 255.0) as u8).collect(),
        (1, 3) => d.pixels.iter().flat_map(|&v| [v, v, v]).collect(),
        (a, b) => unreachable!("{a} → {b} channels"),
    };
    Decoded { pixels, channels, ..d }
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

/// The crop box (x0, y0, width, height) of an image for `o`.
fn crop_box(path: &Path, d: &Decoded, o: &ImageOptions) -> Result<(usize, usize, usize, usize)> {
    match o.crop {
        Crop::Centre => {
            // The largest region of the target's aspect ratio.
            let (cw, ch) = if d.width * o.height >= d.height * o.width {
                ((d.height * o.width / o.height).max(1), d.height)
            } else {
                (d.width, (d.width * o.height / o.width).max(1))
            };
            Ok(((d.width - cw) / 2, (d.height - ch) / 2, cw, ch))
        }
        Crop::Larsen => {
            if (d.width, d.height) != (178, 218) {
                return Err(DataError::new(
                    path,
                    format!("image is {}x{}: the larsen crop is defined on CelebA's aligned 178x218 images (use --crop centre)", d.width, d.height),
                ));
            }
            Ok((15, 40, 148, 148))
        }
    }
}

/// Crops and area-resamples a decoded image to `o`'s size and channels.
pub fn preprocess(path: &Path, d: Decoded, o: &ImageOptions) -> Result<Vec<u8>> {
    let (x0, y0, cw, ch) = crop_box(path, &d, o)?;
    let d = convert(d, o.channels);
    let (wx, wy) = (area_weights(cw, o.width), area_weights(ch, o.height));
    let c = o.channels;
    let mut out = vec![0u8; o.dim()];
    for (oy, wy) in wy.iter().enumerate() {
        for (ox, wx) in wx.iter().enumerate() {
            for k in 0..c {
                let mut s = 0.0f32;
                for &(iy, ay) in wy {
                    for &(ix, ax) in wx {
                        s += ay * ax * d.pixels[((y0 + iy) * d.width + x0 + ix) * c + k] as f32;
                    }
                }
                out[(oy * o.width + ox) * c + k] = s.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(out)
}

/// Decodes and preprocesses `files` on every core, calling `progress(done)` as files
/// finish; the first error (in file order) wins.
pub fn decode_all(files: &[PathBuf], o: &ImageOptions, progress: &(dyn Fn(usize) + Sync)) -> Result<Vec<u8>> {
    let dim = o.dim();
    let mut images = vec![0u8; files.len() * dim];
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(files.len().max(1));
    let chunk = files.len().div_ceil(workers).max(1);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .zip(images.chunks_mut(chunk * dim))
            .map(|(paths, out)| {
                let done = &done;
                s.spawn(move || -> Result<()> {
                    for (i, p) in paths.iter().enumerate() {
                        let img = preprocess(p, decode(p)?, o)?;
                        out[i * dim..(i + 1) * dim].copy_from_slice(&img);
                        progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(DataError::new(Path::new("decoder thread"), "panicked")))).collect()
    });
    for r in results {
        r?;
    }
    Ok(images)
}

/// Splits decoded images (and their attributes, if any) into training and test sets: 10 %
/// (at least 1), chosen by the seed, held out.
pub fn split(images: &[u8], count: usize, attributes: Option<&super::Attributes>, o: &ImageOptions, seed: u64, source: &str) -> Split {
    let dim = o.dim();
    let mut order: Vec<usize> = (0..count).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let n_test = (count / 10).max(1);
    let pick = |ids: &[usize]| -> Dataset {
        let mut px = Vec::with_capacity(ids.len() * dim);
        for &i in ids {
            px.extend_from_slice(&images[i * dim..(i + 1) * dim]);
        }
        let attributes = attributes.map(|a| a.pick(ids));
        Dataset {
            images: px.into(),
            labels: None,
            attributes,
            count: ids.len(),
            height: o.height,
            width: o.width,
            channels: o.channels,
            source: source.to_string(),
        }
    };
    let (test_ids, train_ids) = order.split_at(n_test);
    Split { train: pick(train_ids), test: pick(test_ids) }
}
