//! Interruption and faults, through the real binary: Ctrl-C, SIGKILL at random moments
//! (checkpoints must always load and resume), a full disk during a checkpoint write,
//! divergence; and flat memory over a long run.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::Rng;
use vaegan::checkpoint::{self, Checkpoint};

use crate::common::*;

/// A model small enough that a step takes a millisecond or two.
pub const TINY_TOML: &str = r#"preset = "mnist-mlp"
[model]
encoder = [32]
latent = 4
decoder = [32]
discriminator = [16]
"#;

/// 256 training and 64 test MNIST images and their labels as raw IDX files (hyphenated
/// names: no checksum), written to `dir/data`; quick to load.
pub fn small_idx_dataset(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let split = crate::data::load_mnist();
    for (name, set, n) in [("train", &split.train, 256), ("t10k", &split.test, 64)] {
        let bytes = crate::data::idx_bytes(&[n as u32, 28, 28], &set.images[..n * 784]);
        std::fs::write(data.join(format!("{name}-images-idx3-ubyte")), bytes).unwrap();
        let labels = crate::data::idx_bytes(&[n as u32], &set.labels.as_ref().unwrap()[..n]);
        std::fs::write(data.join(format!("{name}-labels-idx1-ubyte")), labels).unwrap();
    }
    data
}

pub fn vaegan() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vaegan"));
    as_test_run(&mut c);
    c
}

/// The environment and pipes of every `vaegan` a test starts (directly or through mpirun).
pub fn as_test_run(c: &mut Command) {
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("VAEGAN_CACHE_DIR", std::env::temp_dir().join("vaegan-test-cache"))
        // Tests check behaviour, not speed: default tiles, no timing runs at start-up.
        .env("VAEGAN_AUTOTUNE", "0")
        // Each epoch's sample Fréchet distance from 200 samples, not 2,000: the same code.
        .env("VAEGAN_FD_SAMPLES", "200")
        .env("WGPU_BACKEND", std::env::var("VAEGAN_TEST_BACKEND").unwrap_or_else(|_| "vulkan".into()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // The adapter the in-process tests use, and the suite's GEMM tile (common::test_tile),
    // which compiles in a fraction of the default's time.
    if let Ok(adapter) = std::env::var("VAEGAN_TEST_ADAPTER") {
        c.env("WGPU_ADAPTER_NAME", adapter);
    }
    if let Some(tile) = &gpu().forced_tile {
        c.env("VAEGAN_TILE", tile);
    }
}

/// How long a test waits for a run to reach an event before it fails. Generous: a slow
/// host, two cores shared with the rest of the suite, and lavapipe compiling pipelines.
const PATIENCE: Duration = Duration::from_secs(600);

pub struct Run {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub out: PathBuf,
    pub config: PathBuf,
}

pub fn setup() -> Run {
    let dir = tempfile::tempdir().unwrap();
    let data = small_idx_dataset(dir.path());
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, TINY_TOML).unwrap();
    let out = dir.path().join("run");
    Run { dir, data, out, config }
}

impl Run {
    /// A training process: resuming when a checkpoint exists.
    pub fn train(&self, epochs: usize, extra: &[&str]) -> Command {
        let mut c = vaegan();
        let epochs = epochs.to_string();
        if checkpoint::path_in(&self.out).exists() {
            c.args(["train", "--resume", self.out.to_str().unwrap(), "--epochs", &epochs]);
        } else {
            c.args(["train", "--config", self.config.to_str().unwrap(), "--data", self.data.to_str().unwrap()]);
            c.args(["--out", self.out.to_str().unwrap(), "--batch", "16", "--eval-batch", "32", "--epochs", &epochs]);
        }
        c.args(extra);
        c
    }
}

pub fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
}

/// A running `vaegan train` whose stderr lines arrive with the moment they were read, so
/// that a test can wait for what the run says it is doing instead of sleeping.
pub struct Watched {
    pub child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
    spawned: Instant,
}

impl Watched {
    pub fn spawn(mut cmd: Command) -> Watched {
        let spawned = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Watched { child, lines, seen: vec![], spawned }
    }

    /// Waits for a line containing `needle`: the moment it was read. Fails, with what the
    /// run printed, when the run ends first or `PATIENCE` passes.
    pub fn wait_for(&mut self, needle: &str) -> Instant {
        self.wait_for_line(needle, |l| l.contains(needle))
    }

    /// Waits for a line that `is` accepts (`what` describes it in the failure).
    fn wait_for_line(&mut self, what: &str, is: impl Fn(&str) -> bool) -> Instant {
        let needle = what;
        if let Some((t, _)) = self.seen.iter().find(|(_, l)| is(l)) {
            return *t;
        }
        let deadline = self.spawned + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((t, line)) => {
                    let hit = is(&line);
                    self.seen.push((t, line));
                    if hit {
                        return t;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("the run printed no line with {needle:?} within {PATIENCE:?}; it printed:\n{}", self.text());
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    panic!("the run ended ({status}) before printing a line with {needle:?}; it printed:\n{}", self.text());
                }
            }
        }
    }

    pub fn text(&self) -> String {
        self.seen.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n")
    }

    fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the process to end: its exit code (-1 for a signal) and all it printed.
    pub fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok((t, line)) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.seen.push((t, line));
        }
        (status.code().unwrap_or(-1), self.text())
    }
}

/// How long each phase of a run lasts on this host, now: measured on a real run of two
/// epochs, from the lines it prints, so that kills land inside each phase however fast
/// the host is. (start-up, steps of an epoch, checkpoint write, evaluation)
fn measure_phases(run: &Run) -> [Duration; 4] {
    let mut w = Watched::spawn(run.train(2, &[]));
    let started = w.wait_for("epoch 1/2: training from step 0");
    let ck1 = w.wait_for("epoch 1/2: writing the checkpoint");
    let t_start2 = w.wait_for("epoch 2/2: training from step");
    let ck2 = w.wait_for("epoch 2/2: writing the checkpoint");
    let eval2 = w.wait_for("epoch 2/2: evaluating");
    let done2 = w.wait_for_line("the summary of epoch 2", |l| l.starts_with("epoch 2/2: ") && l.contains("samples/s | train"));
    let spawned = w.spawned;
    let (code, text) = w.finish();
    assert_eq!(code, 0, "{text}");
    assert!(ck1 < t_start2);
    let floor = Duration::from_millis(1);
    [(started - spawned).max(floor), (ck2 - t_start2).max(floor), (eval2 - ck2).max(floor), (done2 - eval2).max(floor)]
}

/// Kills training with SIGKILL in every phase of a run — starting up, mid-step, while the
/// checkpoint and the loss rows are written, during evaluation and the metrics append —
/// 48 times, resuming each time. Each kill waits for the run to announce the phase, then
/// lands a random moment into it (the phase's length measured on this host first), so
/// the test means the same on a fast host and a slow one. After every kill the
/// checkpoint on disk loads, the next run resumes from it, and the step count never goes
/// backwards.
#[test]
fn sigkill_at_random_moments_never_leaves_a_broken_checkpoint() {
    let run = setup();
    let mut rng = rng("sigkill_at_random_moments_never_leaves_a_broken_checkpoint");
    let spans = measure_phases(&run);
    eprintln!("phases on this host: start-up {:?}, steps {:?}, checkpoint {:?}, evaluation {:?}", spans[0], spans[1], spans[2], spans[3]);
    let path = checkpoint::path_in(&run.out);
    let mut last_step = Checkpoint::load(&path).unwrap().step;
    let first_step = last_step;
    let (mut kills_after_a_checkpoint, mut advanced) = (0, 0);
    let phases = ["start-up", "steps", "checkpoint", "evaluation"];
    for i in 0..48 {
        let which = i % 4;
        let mut w = Watched::spawn(run.train(1_000_000, &[]));
        let at = match which {
            0 => w.spawned,
            1 => w.wait_for("training from step"),
            2 => w.wait_for("writing the checkpoint"),
            _ => w.wait_for("evaluating on the test set"),
        };
        let delay = spans[which].mul_f64(rng.random_range(0.0..1.0));
        std::thread::sleep((at + delay).saturating_duration_since(Instant::now()));
        w.signal(libc::SIGKILL);
        let (code, stderr) = w.finish();
        let context = format!("kill {i}, in {} (+{delay:?})", phases[which]);
        assert!(!stderr.contains("panicked"), "{context}: {stderr}");
        assert!(code == -1 || code == 0, "{context}: exited {code} before the kill: {stderr}");
        if path.exists() {
            let ck = Checkpoint::load(&path).unwrap_or_else(|e| panic!("{context}: the checkpoint does not load: {e}"));
            assert!(ck.step >= last_step, "{context}: step went back from {last_step} to {}", ck.step);
            advanced += (ck.step > last_step) as usize;
            last_step = ck.step;
            kills_after_a_checkpoint += 1;
        }
    }
    assert_eq!(kills_after_a_checkpoint, 48, "every kill came after the first checkpoint");
    // Kills during evaluation land after that epoch's checkpoint: the run moves on.
    assert!(advanced >= 6 && last_step > first_step, "too few kills let a checkpoint through ({advanced}; step {first_step} → {last_step})");
    // And the run still resumes and finishes cleanly, its side files whole.
    let ck = Checkpoint::load(&path).unwrap();
    let (code, stderr) = finish(run.train(ck.epoch + 1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert_whole_csv(&run.out.join("losses.csv"));
    assert_whole_csv(&run.out.join("metrics.csv"));
}

/// Every row of a side file has the header's number of numeric fields, and the first
/// column strictly increases.
pub fn assert_whole_csv(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let columns = lines.next().unwrap().split(',').count();
    let mut last = None;
    for (i, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), columns, "{}: line {} is {line:?}", path.display(), i + 2);
        let first: u64 = fields[0].parse().unwrap_or_else(|_| panic!("{}: line {} is {line:?}", path.display(), i + 2));
        assert!(last.is_none_or(|l| l < first), "{}: line {} repeats or goes back: {line:?}", path.display(), i + 2);
        last = Some(first);
        for f in &fields[1..] {
            assert!(f.is_empty() || f.parse::<f64>().is_ok(), "{}: line {} is {line:?}", path.display(), i + 2);
        }
    }
}

/// Ctrl-C: the current step ends, a checkpoint is written, exit code 130; it resumes.
#[test]
fn sigint_writes_a_checkpoint_and_exits_130() {
    let run = setup();
    let mut w = Watched::spawn(run.train(1_000_000, &[]));
    // Into the second epoch's steps: a checkpoint exists and steps are running.
    w.wait_for("epoch 2/1000000: training from step 0");
    w.signal(libc::SIGINT);
    let (code, stderr) = w.finish();
    assert_eq!(code, 130, "{stderr}");
    assert!(stderr.contains("continue with: vaegan train --resume"), "{stderr}");
    let ck = Checkpoint::load(&checkpoint::path_in(&run.out)).unwrap();
    assert!(ck.step > 0);
    let (code, stderr) = finish(run.train(ck.epoch + 1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
}

/// A full disk (simulated by a file-size limit smaller than the checkpoint) during a
/// checkpoint write: a clear error, and the previous checkpoint intact.
#[test]
fn a_full_disk_leaves_the_previous_checkpoint_intact() {
    let run = setup();
    let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let path = checkpoint::path_in(&run.out);
    let before = std::fs::read(&path).unwrap();
    let limit = (before.len() / 2) as u64;
    let mut cmd = run.train(2, &[]);
    unsafe {
        cmd.pre_exec(move || {
            // Writes past the limit fail with EFBIG instead of killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            Ok(())
        });
    }
    let (code, stderr) = finish(cmd.spawn().unwrap());
    assert!(code != 0 && !stderr.contains("panicked"), "{code}: {stderr}");
    assert!(stderr.contains("cannot write the checkpoint") && stderr.contains("intact"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the previous checkpoint changed");
    Checkpoint::load(&path).unwrap();
    assert!(!path.with_extension("safetensors.tmp").exists(), "the partial file is removed");
    let _ = run.dir;
}

/// A diverging run (learning rate 1000) stops within a bounded number of steps, names the
/// step and the loss, and leaves the last good checkpoint untouched.
#[test]
fn divergence_stops_training_and_keeps_the_last_good_checkpoint() {
    let run = setup();
    let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let path = checkpoint::path_in(&run.out);
    let good = std::fs::read(&path).unwrap();
    // A fresh run into the same folder (not --resume) with an absurd learning rate.
    let mut cmd = vaegan();
    cmd.args(["train", "--config", run.config.to_str().unwrap(), "--data", run.data.to_str().unwrap(), "--out", run.out.to_str().unwrap()]);
    cmd.args(["--batch", "16", "--epochs", "3", "--lr", "1000"]);
    let (code, stderr) = finish(cmd.spawn().unwrap());
    assert!(code != 0 && !stderr.contains("panicked"), "{stderr}");
    let at = stderr.find("diverged at step ").unwrap_or_else(|| panic!("{stderr}"));
    let step: u64 = stderr[at + 17..].split(':').next().unwrap().parse().unwrap();
    // Losses are read back every 10 steps, asynchronously (at most 3 in flight).
    assert!(step <= 16, "detected only at step {step} (16 steps an epoch)");
    assert!(stderr.contains("last good checkpoint is kept"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Twenty epochs of training with evaluation and sampling every epoch, as `vaegan train`
/// runs them: after the first epoch, the number and bytes of GPU buffers stay the same and
/// host memory stays flat.
///
/// Resident memory is the whole process's, and the harness runs tests side by side in one
/// process: another test's allocations between the two readings made this fail in a cold CI
/// run (1.47 → 1.51 GB, while alone it grows by 0.2 MB). So the test runs itself again in a
/// child process of its own, alone, and the child's verdict is the test's.
#[test]
fn memory_stays_flat_over_a_long_run() {
    const ALONE: &str = "VAEGAN_TEST_MEMORY_ALONE";
    if std::env::var_os(ALONE).is_none() {
        let name = "interrupt::memory_stays_flat_over_a_long_run";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--test-threads=1", "--nocapture"])
            .env(ALONE, "1")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("1 passed"), "the test alone in a child process failed:\n{text}");
        eprintln!("{}", text.lines().filter(|l| l.starts_with("after epoch")).collect::<Vec<_>>().join("\n"));
        return;
    }
    use std::sync::atomic::AtomicBool;
    let config = vaegan::model::RunConfig::from_toml(TINY_TOML, "tiny.toml").unwrap();
    let split = crate::data::load_mnist();
    let split = vaegan::train::limited(split, Some(256), Some(64));
    let g = fresh_gpu(false);
    let mut t = vaegan::train::Trainer::new(&g, config.clone(), 16, 1, &split.train, None).unwrap();
    let mut ev = vaegan::train::eval::Evaluator::new(&g, &config.model, 32, 1).unwrap();
    let mut dec = vaegan::train::eval::Decoder::new(&g, &config.model, 8).unwrap();
    let z = vaegan::train::eval::fixed_normals(8, config.model.latent, 3);
    let stop = AtomicBool::new(false);
    let mut epoch = |t: &mut vaegan::train::Trainer| {
        t.run_epoch(&stop, |_| {}).unwrap();
        t.advance_if_done().unwrap();
        t.history.clear();
        let params = t.exec.read_params().unwrap();
        let lookup = |n: &str| params.iter().find(|(k, _, _)| k == n).map(|(_, _, v)| v.clone());
        ev.load(&lookup).unwrap();
        dec.load(&lookup).unwrap();
        ev.evaluate(&split.test).unwrap();
        dec.decode(&z).unwrap();
        let _ = t.checkpoint().unwrap().to_bytes().unwrap();
        g.wait().unwrap();
    };
    epoch(&mut t);
    let (buffers, bytes) = g.buffer_stats();
    let rss = resident_bytes();
    for _ in 1..20 {
        epoch(&mut t);
    }
    let (buffers2, bytes2) = g.buffer_stats();
    let rss2 = resident_bytes();
    eprintln!("after epoch 1: {buffers} GPU buffers, {bytes} bytes, {rss} resident; after 20: {buffers2}, {bytes2}, {rss2}");
    assert!(buffers > 0, "wgpu's counters are on");
    assert_eq!((buffers2, bytes2), (buffers, bytes), "GPU buffers grew");
    assert!(rss2 < rss + (16 << 20), "host memory grew from {rss} to {rss2} bytes");
}

/// `vaegan eval --quality` on a freshly trained checkpoint, CI-sized (200 samples).
#[test]
fn eval_quality_runs_on_a_checkpoint() {
    let run = setup();
    let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let out =
        vaegan().args(["eval", "--checkpoint", run.out.to_str().unwrap(), "--quality", "-n", "200", "--batch", "32"]).stdout(Stdio::piped()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "test negative ELBO",
        "Fréchet distance, 200 samples",
        "reconstructions Dec(μ)",
        "(the floor)",
        "predicted classes 0-9",
        "class entropy",
        "confidence >= 0.9",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing from {stdout}");
    }
    let fd: f64 = stdout.split("test images: ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(fd.is_finite() && fd > 0.0, "{fd}");
}

/// `vaegan bench --quick --json`: one well-formed JSON object, every figure finite and positive.
#[test]
fn bench_quick_json_is_well_formed() {
    let out = vaegan().args(["bench", "--quick", "--json"]).stdout(Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let c = &v["ceiling"];
    for key in ["copy_gb_s", "matmul_gflop_s"] {
        let x = c[key].as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite() && x > 0.0, "ceiling.{key} = {x}");
    }
    let kernels = v["kernels"].as_array().unwrap();
    assert!(kernels.len() >= 8, "{} kernel rows", kernels.len());
    for row in kernels {
        let t = row["microseconds"].as_f64().unwrap();
        let speed = row["gflop_s"].as_f64().or(row["gb_s"].as_f64()).unwrap();
        assert!(t.is_finite() && t > 0.0 && speed.is_finite() && speed > 0.0, "{row}");
    }
    assert!(kernels.iter().any(|r| r["kernel"] == "batch_norm fwd") && kernels.iter().any(|r| r["kernel"] == "batch_norm bwd"));
    let convs = v["convs"].as_array().unwrap();
    // The first GEMM of each role of celeba64's step, and the first 3-channel input gradient
    // with the path the automatic choice (narrow kernel or GEMM) did not take beside it.
    let names: Vec<&str> = convs.iter().map(|r| r["kernel"].as_str().unwrap()).collect();
    assert_eq!(convs.len(), 5, "{names:?}");
    assert!(names.iter().any(|n| *n == "input grad, GEMM" || *n == "input grad, narrow"), "{names:?}");
    for row in convs {
        for key in ["microseconds", "gflop_s", "matmul_gflop_s", "of_matmul"] {
            let x = row[key].as_f64().unwrap_or(f64::NAN);
            assert!(x.is_finite() && x > 0.0, "{key} in {row}");
        }
    }
    let steps = v["steps"].as_array().unwrap();
    let models: Vec<&str> = steps.iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(models, ["mnist-mlp vae-gan", "mnist-mlp vae", "mnist-conv"]);
    for row in steps {
        for key in ["samples_per_s", "ms_per_step", "gflop_s"] {
            let x = row[key].as_f64().unwrap();
            assert!(x.is_finite() && x > 0.0, "{key} in {row}");
        }
        assert!(row["dispatches"].as_u64().unwrap() > 10);
    }
    let feeds = v["feeds"].as_array().unwrap();
    assert_eq!(feeds.len(), 1, "mnist-conv resident and streamed");
    for key in ["resident_ms", "streamed_ms"] {
        let x = feeds[0][key].as_f64().unwrap();
        assert!(x.is_finite() && x > 0.0, "{key} in {}", feeds[0]);
    }
    assert!(v["clock"].as_str().unwrap().contains("timestamp") || v["clock"].as_str().unwrap().contains("host"));
}

/// `vaegan prior` on a freshly trained checkpoint, then sampling and `eval --quality` from
/// it; a prior of another step, or none, is refused with the command that makes one.
#[test]
fn a_fitted_prior_samples_and_is_checked_against_its_checkpoint() {
    let run = setup();
    let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let ck = run.out.to_str().unwrap();
    let png = run.dir.path().join("prior-samples.png");
    let missing = vaegan().args(["sample", "--checkpoint", ck, "--prior", "--out", png.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success() && err.contains("prior.safetensors: no such prior") && err.contains("vaegan prior --checkpoint"), "{err}");

    let out = vaegan().args(["prior", "--checkpoint", ck, "-k", "3", "--iterations", "20"]).stdout(Stdio::piped()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("codes: 256") && stdout.contains("3 components"), "{stdout}");
    let prior = run.out.join("prior.safetensors");
    assert!(prior.is_file());

    let out = vaegan().args(["sample", "--checkpoint", ck, "--prior", "-n", "16", "--out", png.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success() && png.is_file(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("z from the fitted prior"));
    let out = vaegan().args(["eval", "--checkpoint", ck, "--quality", "-n", "200", "--batch", "32", "--prior"]).stdout(Stdio::piped()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("200 samples (z from the fitted prior)"), "{stdout}");

    // A prior of another step: refused, naming both steps.
    let mut gm = vaegan::model::GaussianMixture::load(&prior).unwrap();
    gm.step += 1;
    gm.save(&prior).unwrap();
    let out = vaegan().args(["sample", "--checkpoint", ck, "--prior", prior.to_str().unwrap(), "--out", png.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&format!("fitted to the checkpoint at step {}", gm.step)) && err.contains("again"), "{err}");
    let out = vaegan().args(["eval", "--checkpoint", ck, "--prior"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("add --quality"));

    // --data encodes that set's training images, --out writes where it says, --seed draws
    // the codes and EM's start: the same seed, the same file; another, another.
    let other = run.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mnist = crate::data::load_mnist();
    std::fs::write(other.join("train-images-idx3-ubyte"), crate::data::idx_bytes(&[100, 28, 28], &mnist.train.images[5000 * 784..5100 * 784])).unwrap();
    std::fs::copy(run.data.join("t10k-images-idx3-ubyte"), other.join("t10k-images-idx3-ubyte")).unwrap();
    // The mixtures compared, not the files' bytes: safetensors writes its metadata map in
    // no fixed order.
    let fit = |seed: &str, name: &str| -> (String, [Vec<f64>; 3]) {
        let file = run.dir.path().join(name);
        let mut cmd = vaegan();
        cmd.args([
            "prior",
            "--checkpoint",
            ck,
            "-k",
            "2",
            "--iterations",
            "5",
            "--seed",
            seed,
            "--data",
            other.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ]);
        let out = cmd.stdout(Stdio::piped()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let gm = vaegan::model::GaussianMixture::load(&file).unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), [gm.weights, gm.means, gm.variances])
    };
    let ((text, a), (_, b), (_, c)) = (fit("3", "a.safetensors"), fit("3", "b.safetensors"), fit("4", "c.safetensors"));
    assert!(text.contains("codes: 100") && text.contains("2 components"), "{text}");
    assert_eq!(a, b, "the same seed, the same prior");
    assert_ne!(a, c, "another seed, another prior");
}
