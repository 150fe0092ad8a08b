//! Autotuning the matmul's register tile: on first use of a shape class (layout, operand
//! type, and M, N, K rounded up to powers of two) on an adapter, a few candidate tiles are
//! timed on the real shape and the fastest is kept — in memory, and in a JSON file keyed by
//! adapter, driver and shape class, so the next process starts tuned. Every tile computes
//! each output with the same chain of FMAs over k, so the choice changes speed, never bits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use super::matmul::{Tile, Trans};
use crate::gpu::{AdapterClass, DType, Gpu};

#[derive(Default)]
pub struct Autotuner {
    /// Where choices persist (None: memory only).
    pub path: Option<PathBuf>,
    choices: Mutex<HashMap<String, Tile>>,
    loaded: Mutex<bool>,
}

/// The cache file: `VAEGAN_CACHE_DIR`, else `$XDG_CACHE_HOME/vaegan`, else `~/.cache/vaegan`.
pub fn default_path() -> Option<PathBuf> {
    let dir = std::env::var_os("VAEGAN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("vaegan")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/vaegan")))?;
    Some(dir.join("autotune.json"))
}

/// The tiles tried on an adapter: those of its class that it can run.
pub fn candidates(gpu: &Gpu) -> Vec<Tile> {
    class_candidates(gpu.class).into_iter().filter(|t| t.check(gpu).is_ok()).collect()
}

/// The tiles worth trying on a class of adapter.
pub fn class_candidates(class: AdapterClass) -> Vec<Tile> {
    let r = Tile::register;
    let s = Tile::shared;
    match class {
        AdapterClass::Cpu => vec![
            Tile::subgroup(32, 8),
            Tile::subgroup(16, 8),
            Tile::subgroup(32, 4),
            Tile::subgroup(24, 8),
            r(16, 16, 8, 8),
            r(8, 16, 8, 8),
        ],
        AdapterClass::Gpu => vec![
            s(4, 4, 16, 16),
            s(8, 8, 16, 16),
            s(4, 8, 16, 16),
            s(8, 4, 16, 16),
            s(8, 8, 8, 8),
            r(4, 4, 16, 16),
            r(8, 8, 8, 8),
        ],
    }
}

/// Bumped when the set of kernels changes, so that choices made among older candidates are
/// made again.
const VERSION: &str = "v2";

fn bucket(x: usize) -> usize {
    x.next_power_of_two()
}

pub fn key(gpu: &Gpu, trans: Trans, dtype: DType, m: usize, n: usize, k: usize) -> String {
    format!(
        "{VERSION}|{}|{} {}|{:?}|{}|{:?}|m{}n{}k{}",
        gpu.info.name, gpu.info.driver, gpu.info.driver_info, gpu.info.backend, trans.name(), dtype, bucket(m), bucket(n), bucket(k)
    )
}


impl Autotuner {
    pub fn new(path: Option<PathBuf>) -> Self {
        Autotuner { path, ..Default::default() }
    }

    /// Reads the cache file once (a missing or unreadable file is an empty cache).
    fn load(&self) {
        let mut loaded = self.loaded.lock().unwrap();
        if *loaded {
            return;
        }
        *loaded = true;
        let Some(path) = &self.path else { return };
        let Ok(text) = std::fs::read_to_string(path) else { return };
        match serde_json::from_str::<HashMap<String, String>>(&text) {
            Ok(map) => {
                let mut choices = self.choices.lock().unwrap();
                for (k, v) in map {
                    if let Some(t) = v.parse::<Tile>().ok() {
                        choices.entry(k).or_insert(t);
                    }
                }
            }
            Err(e) => log::warn!("{}: ignoring an unreadable autotune cache ({e})", path.display()),
        }
    }

    pub fn cached(&self, key: &str) -> Option<Tile> {
        self.load();
        self.choices.lock().unwrap().get(key).copied()
    }

    /// Records a choice and rewrites the cache file (atomically; failures only logged:
    /// tuning again next time is the worst outcome).
    pub fn record(&self, key: String, tile: Tile) {
        self.load();
        let snapshot: HashMap<String, String> = {
            let mut choices = self.choices.lock().unwrap();
            choices.insert(key, tile);
            choices.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
        };
        let Some(path) = &self.path else { return };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
            std::fs::write(&tmp, serde_json::to_string_pretty(&snapshot).map_err(std::io::Error::other)?)?;
            std::fs::rename(tmp, path)
        };
        if let Err(e) = write() {
            log::warn!("{}: cannot save the autotune cache: {e}", path.display());
        }
    }

    pub fn choices(&self) -> usize {
        self.load();
        self.choices.lock().unwrap().len()
    }
}
