//! A small persistent store of tuning choices: text values under text keys, kept in
//! memory and in a JSON file, so that the next process starts with what this one chose.
//! What is tuned, and how, is the kernels' business (`kernels::autotune`); this layer
//! only keeps the answers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct TuningCache {
    /// Where choices persist (None: memory only).
    pub path: Option<PathBuf>,
    choices: Mutex<HashMap<String, String>>,
    loaded: Mutex<bool>,
    /// Time this process may spend tuning; past it, callers keep their defaults and leave
    /// the rest to later runs.
    pub budget: Duration,
    spent: Mutex<(Duration, usize)>,
    /// Print a line per tuning to stderr (the CLI: a user sees why the first run waits).
    pub verbose: bool,
}

/// The default budget: `VAEGAN_AUTOTUNE_BUDGET` seconds, else 30.
pub fn default_budget() -> Duration {
    let secs = std::env::var("VAEGAN_AUTOTUNE_BUDGET").ok().and_then(|s| s.parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.0);
    Duration::from_secs_f64(secs.unwrap_or(30.0))
}

/// The cache file: `VAEGAN_CACHE_DIR`, else `$XDG_CACHE_HOME/vaegan`, else `~/.cache/vaegan`.
pub fn default_path() -> Option<PathBuf> {
    let dir = std::env::var_os("VAEGAN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("vaegan")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/vaegan")))?;
    Some(dir.join("autotune.json"))
}

impl TuningCache {
    /// A store persisted at `path` (None: memory only).
    pub fn new(path: Option<PathBuf>) -> Self {
        TuningCache { path, budget: default_budget(), ..Default::default() }
    }

    /// Time left in this process's tuning budget (zero when spent).
    pub fn budget_left(&self) -> Duration {
        self.budget.saturating_sub(self.spent.lock().unwrap().0)
    }

    /// Counts a tuning of `took` and says so when verbose: what, the choice, the budget.
    pub fn report(&self, what: &str, choice: &str, took: Duration) {
        let (n, spent) = {
            let mut s = self.spent.lock().unwrap();
            s.0 += took;
            s.1 += 1;
            (s.1, s.0)
        };
        if self.verbose {
            eprintln!(
                "tuning matmul tiles for this adapter (first use; cached for later runs): shape {n}, {what} -> {choice} in {:.1} s ({:.0} of {:.0} s budget used)",
                took.as_secs_f64(),
                spent.as_secs_f64().min(self.budget.as_secs_f64()),
                self.budget.as_secs_f64()
            );
            if spent >= self.budget {
                eprintln!("tuning budget spent: the remaining shapes keep the default tile now and are tuned by later runs");
            }
        }
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
                    choices.entry(k).or_insert(v);
                }
            }
            Err(e) => log::warn!("{}: ignoring an unreadable tuning cache ({e})", path.display()),
        }
    }

    pub fn cached(&self, key: &str) -> Option<String> {
        self.load();
        self.choices.lock().unwrap().get(key).cloned()
    }

    /// Records a choice and rewrites the cache file (atomically; failures only logged:
    /// tuning again next time is the worst outcome).
    pub fn record(&self, key: String, value: String) {
        self.load();
        let snapshot: HashMap<String, String> = {
            let mut choices = self.choices.lock().unwrap();
            choices.insert(key, value);
            choices.clone()
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
            log::warn!("{}: cannot save the tuning cache: {e}", path.display());
        }
    }
}
