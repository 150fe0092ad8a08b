//! The decoded-image cache: a folder of photos is decoded, cropped and resampled once, into
//! one compact u8 file; later runs read that file instead of decoding again (CelebA's
//! 200,000 JPEGs take minutes to decode, its 64×64 cache seconds to read).
//!
//! The cache is keyed by a SHA-256 over the format version, the preprocessing (size,
//! channels, crop) and every source file's path, size and modification time: a file that
//! is added, removed, rewritten or touched gives another key, so a stale cache is never
//! used. The file holds its key; a cache whose key, header or length does not match is
//! rebuilt. It is written to a temporary file and renamed, so an interrupted build leaves
//! no half cache behind.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::images::{self, ImageOptions};
use super::{DataError, Result};

const MAGIC: &[u8; 8] = b"VAEGANC1";
const HEADER: usize = 8 + 32 + 8 + 4 * 3;

/// What happened to the cache on this load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Read from this file.
    Hit(PathBuf),
    /// Decoded, and written to this file.
    Built(PathBuf),
    /// Decoded, but the cache could not be written (why); the run goes on without it.
    Unwritable(PathBuf, String),
}

/// Where caches live: `$VAEGAN_CACHE_DIR`, else `$XDG_CACHE_HOME/vaegan`, else
/// `~/.cache/vaegan`, else `.vaegan-cache` inside the data folder.
pub fn default_dir(data: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os("VAEGAN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("vaegan");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".cache/vaegan");
    }
    data.join(".vaegan-cache")
}

/// The key of `files` under `o`.
pub fn key(root: &Path, files: &[PathBuf], o: &ImageOptions) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(format!("{}x{}x{} crop={}\n", o.height, o.width, o.channels, o.crop).as_bytes());
    for f in files {
        let meta = std::fs::metadata(f).map_err(|e| DataError::new(f, format!("cannot stat: {e}")))?;
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
        let rel = f.strip_prefix(root).unwrap_or(f);
        h.update(format!("{}\0{}\0{}.{:09}\n", rel.display(), meta.len(), mtime.as_secs(), mtime.subsec_nanos()).as_bytes());
    }
    Ok(h.finalize().into())
}

fn hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cache file of `key` in `dir`.
pub fn path_for(dir: &Path, key: &[u8; 32]) -> PathBuf {
    dir.join(format!("images-{}.u8", &hex(key)[..24]))
}

/// The cached images of `key` (count of them), if the file is whole and matches.
fn read(path: &Path, key: &[u8; 32], o: &ImageOptions) -> Option<(usize, Vec<u8>)> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut head = [0u8; HEADER];
    f.read_exact(&mut head).ok()?;
    if &head[..8] != MAGIC || &head[8..40] != key {
        return None;
    }
    let count = u64::from_le_bytes(head[40..48].try_into().ok()?) as usize;
    let dims: Vec<usize> = head[48..60].chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap()) as usize).collect();
    if dims != [o.height, o.width, o.channels] {
        return None;
    }
    let want = count.checked_mul(o.dim())?;
    if f.metadata().ok()?.len() != (HEADER + want) as u64 {
        return None;
    }
    let mut images = vec![0u8; want];
    f.read_exact(&mut images).ok()?;
    Some((count, images))
}

fn write(path: &Path, key: &[u8; 32], o: &ImageOptions, count: usize, images: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(MAGIC)?;
        f.write_all(key)?;
        f.write_all(&(count as u64).to_le_bytes())?;
        for d in [o.height, o.width, o.channels] {
            f.write_all(&(d as u32).to_le_bytes())?;
        }
        f.write_all(images)?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Every image of `dir` preprocessed by `o` (their files in order, bytes), from the cache in
/// `cache_dir` when it matches, else decoded (reporting `progress(done, total)`) and cached.
pub fn load(dir: &Path, o: &ImageOptions, cache_dir: &Path, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<(Vec<PathBuf>, Vec<u8>, CacheStatus)> {
    let files = images::list_images(dir)?;
    if files.len() < 2 {
        return Err(DataError::new(dir, format!("{} PNG or JPEG images found (searched recursively): need IDX files or at least 2 images", files.len())));
    }
    let key = key(dir, &files, o)?;
    let path = path_for(cache_dir, &key);
    if let Some((count, images)) = read(&path, &key, o) {
        if count == files.len() {
            return Ok((files, images, CacheStatus::Hit(path)));
        }
    }
    let total = files.len();
    let images = images::decode_all(&files, o, &|done| progress(done, total))?;
    let status = match write(&path, &key, o, total, &images) {
        Ok(()) => CacheStatus::Built(path),
        Err(e) => CacheStatus::Unwritable(path, e.to_string()),
    };
    Ok((files, images, status))
}
