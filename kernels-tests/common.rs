//! The harness: one device per test process, fresh random inputs, NaN-poisoned outputs,
//! normwise comparisons with stated tolerances, and central finite differences in f64.
//!
//! The kernel families' tests are shared with the browser harness (`browser.rs`, the same
//! files compiled to wasm and run in headless Chromium's WebGPU): each is written once,
//! as an async body in `gpu_test!`, whose one readback, `download(..).await`, blocks
//! natively and yields to the page's event loop in the browser.

#[cfg(not(target_arch = "wasm32"))]
use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
#[cfg(not(target_arch = "wasm32"))]
use vaegan::kernels::matmul::{Kind, Tile};
#[cfg(not(target_arch = "wasm32"))]
use vaegan::GpuOptions;
use vaegan::{DType, Gpu, GpuBuffer};

/// A GPU test written once for both harnesses: natively a `#[test]` that blocks on its
/// body; in the browser a `wasm_bindgen_test` that opens WebGPU first, then awaits it.
macro_rules! gpu_test {
    ($(#[$meta:meta])* async fn $name:ident() $body:block) => {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        $(#[$meta])*
        fn $name() {
            pollster::block_on(async $body)
        }

        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        $(#[$meta])*
        async fn $name() {
            crate::common::open_gpu().await;
            $body
        }
    };
}

// The browser's device: its WebGPU adapter, opened once by the first test. With none,
// every test fails and says so.
#[cfg(target_arch = "wasm32")]
thread_local! {
    static GPU: std::cell::OnceCell<&'static Gpu> = const { std::cell::OnceCell::new() };
}

#[cfg(target_arch = "wasm32")]
pub async fn open_gpu() {
    if GPU.with(|g| g.get().is_some()) {
        return;
    }
    let gpu = Gpu::request(&Default::default()).await.unwrap_or_else(|e| panic!("the browser kernel tests need a WebGPU adapter and found none: {e}"));
    web_sys::console::log_1(&format!("kernel tests on WebGPU: {:?}, shader-f16 {}", gpu.info.device_type, gpu.features.shader_f16).into());
    let gpu: &'static Gpu = Box::leak(Box::new(gpu));
    GPU.with(|g| {
        let _ = g.set(gpu);
    });
}

#[cfg(target_arch = "wasm32")]
pub fn gpu() -> &'static Gpu {
    GPU.with(|g| *g.get().expect("open_gpu runs before every browser test"))
}

/// The device under test: `VAEGAN_TEST_BACKEND` (or `WGPU_BACKEND`), Vulkan by default;
/// `VAEGAN_TEST_ADAPTER` picks an adapter. With no adapter every test fails and says how
/// to install one: a kernel test that does not run proves nothing.
#[cfg(not(target_arch = "wasm32"))]
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        quiet_gl_probe();
        let backend = std::env::var("VAEGAN_TEST_BACKEND").or_else(|_| std::env::var("WGPU_BACKEND")).unwrap_or_else(|_| "vulkan".to_string());
        let adapter = std::env::var("VAEGAN_TEST_ADAPTER").ok();
        let opts = GpuOptions { backend: Some(backend.clone()), adapter, disable_f16: false, default_limits: default_limits(), ..Default::default() };
        match Gpu::new(&opts) {
            Ok(mut gpu) => {
                let tile = test_tile(&gpu);
                tile.force_on(&mut gpu).unwrap_or_else(|e| panic!("VAEGAN_TEST_TILE: {e}"));
                let limits = if default_limits() { ", under WebGPU's default limits" } else { "" };
                eprintln!("kernel tests on: {}, GEMMs on tile {tile}{limits}", gpu.describe());
                gpu
            }
            Err(e) => panic!(
                "kernel tests need a GPU adapter on backend {backend:?} and found none: {e}\n\
                 On Debian/Ubuntu without a GPU: apt-get install -y mesa-vulkan-drivers"
            ),
        }
    })
}

/// The tile of every GEMM in the suite that names none (`Tile::force_on`): of the kind the
/// adapter's default tile has, the smallest. Tiles change speed, never bits
/// (`matmul::all_tiles_give_the_same_bits`), and a small one compiles in a fraction of the
/// time: lavapipe JITs the 32×8 subgroup tile of a matmul in ~1.7 s on a slow host, the 8×4
/// one in ~0.2 s, and a test of a model compiles dozens of them. The default tiles keep
/// tests of their own (every shape, layout, epilogue and convolution loader).
/// `VAEGAN_TEST_TILE=default` runs everything on the class default; `=TILE` on that tile.
#[cfg(not(target_arch = "wasm32"))]
pub fn test_tile(g: &Gpu) -> Tile {
    let class_default = Tile::class_default(g);
    match std::env::var("VAEGAN_TEST_TILE") {
        Ok(t) if t == "default" => class_default,
        Ok(t) => t.parse().unwrap_or_else(|e| panic!("VAEGAN_TEST_TILE: {e}")),
        Err(_) => match class_default.kind {
            Kind::Subgroup => Tile::subgroup(8, 4),
            Kind::Register => Tile::register(8, 4, 8, 4),
            Kind::Shared => class_default,
        },
    }
}

/// wgpu's EGL probe complains on stderr when XDG_RUNTIME_DIR is unset (harmless).
#[cfg(not(target_arch = "wasm32"))]
fn quiet_gl_probe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
        }
    });
}

/// A second device on the same adapter as `gpu()`, with its own pipeline cache.
#[cfg(not(target_arch = "wasm32"))]
pub fn fresh_gpu(disable_f16: bool) -> Gpu {
    quiet_gl_probe();
    let backend = std::env::var("VAEGAN_TEST_BACKEND").or_else(|_| std::env::var("WGPU_BACKEND")).unwrap_or_else(|_| "vulkan".to_string());
    let adapter = std::env::var("VAEGAN_TEST_ADAPTER").ok();
    Gpu::new(&GpuOptions { backend: Some(backend), adapter, disable_f16, default_limits: default_limits(), ..Default::default() }).expect("a second device")
}

/// `VAEGAN_TEST_DEFAULT_LIMITS=1`: the suite's devices request WebGPU's default limits
/// instead of the adapter's (the floor every laptop GPU and browser guarantees; CI runs the
/// kernel families once so).
#[cfg(not(target_arch = "wasm32"))]
pub fn default_limits() -> bool {
    std::env::var("VAEGAN_TEST_DEFAULT_LIMITS").is_ok_and(|v| v == "1")
}

/// Whether the adapter has SHADER_F16, for tests with an f16 path and an f32 refusal. With
/// `VAEGAN_TEST_REQUIRE_F16` set (CI, on lavapipe, which has it) its absence fails the test:
/// the f16 path cannot be skipped unnoticed.
pub fn has_f16() -> bool {
    let g = gpu();
    if std::env::var("VAEGAN_TEST_REQUIRE_F16").is_ok() {
        assert!(g.features.shader_f16, "VAEGAN_TEST_REQUIRE_F16 is set but {} has no SHADER_F16", g.describe());
    }
    g.features.shader_f16
}

/// Whether the adapter has the fixed 8-lane subgroups the subgroup matmul is written for.
/// With `VAEGAN_TEST_REQUIRE_SUBGROUPS` set (CI, on lavapipe with AVX2) their absence fails
/// the test: the subgroup kernel cannot be skipped unnoticed.
pub fn has_subgroup_kernel() -> bool {
    let g = gpu();
    let lanes = vaegan::kernels::matmul::SUBGROUP_LANES;
    if std::env::var("VAEGAN_TEST_REQUIRE_SUBGROUPS").is_ok() {
        assert!(
            g.features.subgroup_size == lanes,
            "VAEGAN_TEST_REQUIRE_SUBGROUPS is set but {} has subgroups of {} lanes (0: none or varying), not {lanes}",
            g.describe(),
            g.features.subgroup_size
        );
    }
    g.features.subgroup_size == lanes
}

/// Whether this pass runs the sweeps — every tile, shape, layout and geometry — or each
/// kernel family and variant once, at a few odd shapes. The GL and browser passes exist to
/// catch a backend's or a shader compiler's differences, which are per shader, not per
/// size; the native default pass (Vulkan) sweeps. `VAEGAN_TEST_SWEEPS=1` (or `0`) decides.
#[cfg(not(target_arch = "wasm32"))]
pub fn sweeps() -> bool {
    match std::env::var("VAEGAN_TEST_SWEEPS") {
        Ok(v) => v != "0",
        Err(_) => std::env::var("VAEGAN_TEST_BACKEND").map_or(true, |b| b != "gl"),
    }
}

#[cfg(target_arch = "wasm32")]
pub fn sweeps() -> bool {
    option_env!("VAEGAN_TEST_SWEEPS").is_some_and(|v| v != "0")
}

/// All of `all` where the pass sweeps, else the elements at `picks` (indices into `all`).
pub fn swept<T: Clone>(all: &[T], picks: &[usize]) -> Vec<T> {
    if sweeps() {
        all.to_vec()
    } else {
        picks.iter().map(|&i| all[i].clone()).collect()
    }
}

/// A fresh generator per test; the seed is printed so that a failure can be replayed
/// with VAEGAN_TEST_SEED.
#[cfg(not(target_arch = "wasm32"))]
pub fn rng(test: &str) -> StdRng {
    let seed = std::env::var("VAEGAN_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| rand::rng().random::<u64>());
    eprintln!("{test}: VAEGAN_TEST_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// In the browser the seed comes from `Math.random` (VAEGAN_TEST_SEED at build time
/// replays one) and is printed on the console, which the runner shows for a failure.
#[cfg(target_arch = "wasm32")]
pub fn rng(test: &str) -> StdRng {
    let seed = option_env!("VAEGAN_TEST_SEED").and_then(|s| s.parse().ok()).unwrap_or_else(|| (js_sys::Math::random() * 2f64.powi(53)) as u64);
    web_sys::console::log_1(&format!("{test}: VAEGAN_TEST_SEED={seed}").into());
    StdRng::seed_from_u64(seed)
}

pub fn randn(rng: &mut StdRng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.sample::<f64, _>(StandardNormal)).collect()
}

pub fn uniform(rng: &mut StdRng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Values rounded to f32, so that the reference sees exactly what the GPU sees.
pub fn as_f32(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| v as f32 as f64).collect()
}

pub fn upload(x: &[f64]) -> GpuBuffer {
    let data: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    gpu().upload_f32("test input", &data).expect("upload")
}

/// An output buffer filled with NaN, so an element the kernel never writes fails.
pub fn poisoned(n: usize) -> GpuBuffer {
    let buf = gpu().zeros("test output", n, DType::F32).expect("allocate");
    gpu().poison(&buf);
    buf
}

/// The buffer's values: the tests' one readback (see the module's note).
pub async fn download(buf: &GpuBuffer) -> Vec<f64> {
    gpu().download_f32_async(buf).await.expect("download").into_iter().map(|v| v as f64).collect()
}

/// ‖got − want‖₂ / ‖want‖₂ ≤ tol, and every element finite (NaN never passes).
/// When ‖want‖ is tiny the error is taken as absolute.
#[track_caller]
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().position(|v| !v.is_finite()) {
        panic!("{what}: element {i} is {} (reference {}): unwritten or non-finite", got[i], want[i]);
    }
    let diff = got.iter().zip(want).map(|(g, w)| (g - w) * (g - w)).sum::<f64>().sqrt();
    let norm = want.iter().map(|w| w * w).sum::<f64>().sqrt();
    let err = diff / norm.max(1e-30);
    let err = if norm < 1e-12 { diff } else { err };
    // Written so that a NaN error fails too.
    if err.is_nan() || err > tol {
        let worst = (0..got.len()).max_by(|&a, &b| (got[a] - want[a]).abs().partial_cmp(&(got[b] - want[b]).abs()).unwrap()).unwrap();
        panic!("{what}: relative error {err:.3e} > {tol:.0e} (worst element {worst}: gpu {} vs reference {})", got[worst], want[worst]);
    }
}
/// A device with autotuning on, its choices cached in `cache`.
#[cfg(not(target_arch = "wasm32"))]
pub fn tuning_gpu(cache: &std::path::Path) -> vaegan::Gpu {
    let backend = std::env::var("VAEGAN_TEST_BACKEND").unwrap_or_else(|_| "vulkan".into());
    vaegan::Gpu::new(&vaegan::GpuOptions { backend: Some(backend), autotune: true, autotune_cache: Some(cache.to_path_buf()), ..Default::default() }).unwrap()
}

/// Two kernels that compute the same chain of operations must give the same bits (f32
/// values widened to f64 exactly); a NaN in either fails, as does a length mismatch.
#[track_caller]
pub fn assert_same_bits(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: {} values, expected {}", got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(!g.is_nan() && !w.is_nan(), "{what}: NaN at {i} ({g} vs {w})");
        assert!(g.to_bits() == w.to_bits(), "{what}: element {i} is {g:e}, expected the bits of {w:e}");
    }
}

/// ‖got − want‖₂ ≤ tol·‖magnitude‖₂, every element finite. For results that may cancel
/// (sums, products plus a bias, exp(x) − 1), the error of f32 arithmetic is relative to the
/// size of the terms, not of their sum: `magnitude` is the same computation on |terms|.
#[track_caller]
pub fn assert_close_mag(what: &str, got: &[f64], want: &[f64], magnitude: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().position(|v| !v.is_finite()) {
        panic!("{what}: element {i} is {} (reference {}): unwritten or non-finite", got[i], want[i]);
    }
    let diff = got.iter().zip(want).map(|(g, w)| (g - w) * (g - w)).sum::<f64>().sqrt();
    let norm = magnitude.iter().map(|w| w * w).sum::<f64>().sqrt();
    if diff.is_nan() || diff > tol * norm {
        panic!("{what}: error {diff:.3e} > {tol:.0e} · ‖magnitude‖ = {:.3e}", tol * norm);
    }
}

pub fn abs(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| v.abs()).collect()
}

/// Central differences (f(x + h·e_i) − f(x − h·e_i)) / 2h at the given coordinates, in f64.
pub fn finite_diff(f: impl Fn(&[f64]) -> f64, x: &[f64], coords: &[usize], h: f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    coords
        .iter()
        .map(|&i| {
            let orig = xp[i];
            xp[i] = orig + h;
            let up = f(&xp);
            xp[i] = orig - h;
            let down = f(&xp);
            xp[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Up to `k` distinct coordinates of a length-n tensor (all of them when n ≤ k).
pub fn sample_coords(rng: &mut StdRng, n: usize, k: usize) -> Vec<usize> {
    if n <= k {
        return (0..n).collect();
    }
    rand::seq::index::sample(rng, n, k).into_vec()
}

/// Step for finite differences. The reference is f64 and smooth away from kinks, so with
/// h = 1e-6 truncation (~h²) and rounding (~1e-16/h) errors are both ≈ 1e-10, far below
/// the f32 error of the GPU gradient being checked.
pub const FD_STEP: f64 = 1e-6;

/// Tolerance for a GPU (f32) gradient against finite differences of the f64 reference.
pub const FD_TOL: f64 = 1e-4;

/// Checks a GPU gradient against central differences of `loss` on sampled coordinates.
#[track_caller]
pub fn check_grad(what: &str, rng: &mut StdRng, loss: impl Fn(&[f64]) -> f64, x: &[f64], gpu_grad: &[f64]) {
    check_grad_tol(what, rng, loss, x, gpu_grad, FD_TOL)
}

#[track_caller]
pub fn check_grad_tol(what: &str, rng: &mut StdRng, loss: impl Fn(&[f64]) -> f64, x: &[f64], gpu_grad: &[f64], tol: f64) {
    let coords = sample_coords(rng, x.len(), 48);
    let fd = finite_diff(&loss, x, &coords, FD_STEP);
    let got: Vec<f64> = coords.iter().map(|&i| gpu_grad[i]).collect();
    assert_close(&format!("{what} vs finite differences"), &got, &fd, tol);
}

/// Moves values at least `gap` away from `at`, so that finite differences do not straddle
/// a kink (ReLU at 0, a clamp).
pub fn away_from(x: &mut [f64], at: f64, gap: f64) {
    for v in x {
        if (*v - at).abs() < gap {
            *v = at + if *v >= at { gap } else { -gap };
        }
    }
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A compound kernel's scratch buffers of the given lengths, poisoned with NaN: a kernel
/// that read scratch before writing it would show.
pub fn scratch(lens: Vec<usize>) -> Vec<GpuBuffer> {
    lens.into_iter().map(poisoned).collect()
}
