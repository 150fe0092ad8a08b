//! IDX files (LeCun's format): a big-endian u32 magic `0x0000TTNN` (TT the element type,
//! 0x08 for unsigned bytes; NN the number of dimensions), NN big-endian u32 dimensions, then
//! the data, row-major. Read gzip-compressed or raw; every length is checked before it is
//! trusted, and the data is read incrementally, so a lying header cannot make us allocate
//! what the file does not hold.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{DataError, Dataset, Result};

/// Checksums of the decompressed MNIST files (datasets/mnist/SOURCE.md): a shipped copy
/// that does not match is refused.
const MNIST_SHA256: [(&str, &str); 4] = [
    ("train-images.idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    ("train-labels.idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    ("t10k-images.idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    ("t10k-labels.idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
];

/// The most data we accept from one IDX file (4 GiB is far beyond any image set that fits
/// a GPU binding; the limit stops absurd headers early).
const MAX_BYTES: u64 = 1 << 32;

#[derive(Clone, Debug, PartialEq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Parses IDX from a reader (already decompressed). `file` names it in errors;
/// `available` is the number of data bytes known to exist, if known (raw files).
pub fn parse(mut r: impl Read, file: &Path, available: Option<u64>) -> Result<Idx> {
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).map_err(|_| DataError::new(file, "truncated header: fewer than 4 bytes (expected the IDX magic number)"))?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(DataError::new(
            file,
            format!("magic number 0x{:08x} is not IDX (expected 0x000008NN: two zero bytes, type 0x08, dimension count)", u32::from_be_bytes(magic)),
        ));
    }
    if magic[2] != 0x08 {
        return Err(DataError::new(file, format!("element type 0x{:02x} is not supported (expected 0x08, unsigned byte)", magic[2])));
    }
    let ndims = magic[3] as usize;
    if ndims == 0 {
        return Err(DataError::new(file, "magic number declares 0 dimensions (expected 1 or more)"));
    }
    let mut dims = Vec::with_capacity(ndims);
    for d in 0..ndims {
        let mut b = [0u8; 4];
        r.read_exact(&mut b).map_err(|_| DataError::new(file, format!("truncated header: dimension {d} of {ndims} is missing")))?;
        dims.push(u32::from_be_bytes(b) as usize);
    }
    let total = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).filter(|&t| t <= MAX_BYTES);
    let Some(total) = total else {
        return Err(DataError::new(file, format!("dimensions {dims:?} ask for more than {MAX_BYTES} bytes")));
    };
    if let Some(available) = available {
        if total > available {
            return Err(DataError::new(file, format!("dimensions {dims:?} need {total} data bytes but the file holds {available}")));
        }
        if available > total {
            return Err(DataError::new(file, format!("{} bytes of data follow the {total} that dimensions {dims:?} declare", available - total)));
        }
    }
    let mut data = Vec::new();
    r.take(total + 1).read_to_end(&mut data).map_err(|e| DataError::new(file, format!("read error: {e}")))?;
    if (data.len() as u64) < total {
        return Err(DataError::new(file, format!("truncated data: dimensions {dims:?} need {total} bytes, found {}", data.len())));
    }
    if data.len() as u64 > total {
        return Err(DataError::new(file, format!("more bytes of data follow the {total} that dimensions {dims:?} declare")));
    }
    Ok(Idx { dims, data })
}

/// Reads an IDX file, gzip-compressed (detected by its magic bytes) or raw.
pub fn read(path: &Path) -> Result<Idx> {
    from_bytes(&file_bytes(path)?, path)
}

fn file_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::new(path, format!("cannot read: {e}")))
}

/// Parses the bytes of an IDX file (gzip or raw); `path` names it in errors and decides
/// whether MNIST's checksums apply.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Idx> {
    if bytes.is_empty() {
        return Err(DataError::new(path, "empty file (expected an IDX header)"));
    }
    let idx = if bytes.starts_with(&[0x1f, 0x8b]) {
        // The decompressed stream is read incrementally and bounded by the header's claim.
        let mut raw = vec![];
        let decoder = flate2::read::GzDecoder::new(bytes);
        let idx = parse(TeeReader { inner: decoder, copy: &mut raw }, path, None).map_err(|e| {
            if e.detail.contains("read error") {
                DataError::new(path, format!("corrupt gzip stream: {}", e.detail))
            } else {
                e
            }
        })?;
        verify_mnist(path, &raw)?;
        idx
    } else {
        let header = 4 + 4 * bytes.get(3).copied().unwrap_or(0) as usize;
        let idx = parse(bytes, path, Some(bytes.len().saturating_sub(header) as u64))?;
        verify_mnist(path, bytes)?;
        idx
    };
    Ok(idx)
}

/// Copies what it reads, so that the decompressed bytes can be checksummed.
struct TeeReader<'a, R: Read> {
    inner: R,
    copy: &'a mut Vec<u8>,
}

impl<R: Read> Read for TeeReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

fn verify_mnist(path: &Path, decompressed: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").trim_end_matches(".gz");
    let Some((_, want)) = MNIST_SHA256.iter().find(|(n, _)| *n == name) else { return Ok(()) };
    let got: String = Sha256::digest(decompressed).iter().map(|b| format!("{b:02x}")).collect();
    if got != *want {
        return Err(DataError::new(path, format!("SHA-256 of the decompressed file is {got}, expected MNIST's {want}: the copy is damaged")));
    }
    Ok(())
}

/// Images (N×H×W, or N×D read as N×1×D) and optional labels (N) as a data set.
pub fn load_images(images: &Path, labels: Option<&Path>) -> Result<Dataset> {
    let label_bytes = labels.map(|path| file_bytes(path).map(|b| (b, path))).transpose()?;
    images_from_bytes(&file_bytes(images)?, images, label_bytes.as_ref().map(|(b, p)| (&b[..], *p)))
}

/// As `load_images`, from the files' bytes (the browser fetches them): `images` and the
/// labels' path name them in errors and in MNIST's checksum check.
pub fn images_from_bytes(bytes: &[u8], images: &Path, labels: Option<(&[u8], &Path)>) -> Result<Dataset> {
    let idx = from_bytes(bytes, images)?;
    let (count, height, width) = match idx.dims[..] {
        [n, h, w] => (n, h, w),
        [n, d] => (n, 1, d),
        _ => return Err(DataError::new(images, format!("dimensions {:?}: expected 3 (count, height, width) or 2 (count, pixels)", idx.dims))),
    };
    if count == 0 || height == 0 || width == 0 {
        return Err(DataError::new(images, format!("dimensions {:?} hold no image", idx.dims)));
    }
    let labels = match labels {
        None => None,
        Some((bytes, path)) => {
            let l = from_bytes(bytes, path)?;
            if l.dims.len() != 1 {
                return Err(DataError::new(path, format!("labels have dimensions {:?}, expected 1", l.dims)));
            }
            if l.dims[0] != count {
                return Err(DataError::new(path, format!("{} labels for {count} images in {}", l.dims[0], images.display())));
            }
            Some(l.data)
        }
    };
    Ok(Dataset { images: idx.data.into(), labels, attributes: None, count, height, width, channels: 1, source: images.display().to_string() })
}
