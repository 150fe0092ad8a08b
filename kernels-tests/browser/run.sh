#!/usr/bin/env bash
# The browser tests, after the native ones: every kernel family in headless Chromium's
# WebGPU (wasm-bindgen-test, Debian's chromium and chromium-driver), then the page
# trained end to end against the native run of the same seed (check_page.py).
# Needs: rustup target wasm32-unknown-unknown, wasm-bindgen-cli at the lockfile's version,
# chromium + chromium-driver, python3 with selenium (kernels-tests/python/requirements.txt).
# Usage: bash kernels-tests/browser/run.sh [screenshot.png]
set -euo pipefail
cd "$(dirname "$0")/../.."
here=kernels-tests/browser

want=$(sed -n '/^name = "wasm-bindgen"$/{n;s/version = "\(.*\)"/\1/p}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
    echo "error: the browser tests need wasm-bindgen-cli $want (the lockfile's wasm-bindgen), found '${have:-none}':" >&2
    echo "  cargo install wasm-bindgen-cli --version $want" >&2
    exit 1
fi
for tool in chromium chromedriver; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found: apt-get install -y chromium chromium-driver" >&2; exit 1; }
done

echo "== kernel tests in headless Chromium (WebGPU on SwiftShader)"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER=/usr/bin/chromedriver
export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$here/webdriver.json"
# The whole suite's bound (it takes ~190 s here): a hang, not a slow host, should hit it.
export WASM_BINDGEN_TEST_TIMEOUT=3600
cargo test --target wasm32-unknown-unknown --test browser

echo "== the page, end to end"
# The dev profile reuses the dependencies the browser tests just built (ours at opt-level
# 1, theirs at 3: the GPU's work dominates); the CLI as the native tests build it (`cargo
# test --no-run`, with VAEGAN_FEATURES, e.g. mpi): `cargo build` would unify the
# dependencies' features without the dev-dependencies and rebuild several crates.
bash src/web/build.sh dev
cargo test --no-run --test kernels --features "${VAEGAN_FEATURES:-}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/check_page.py" --vaegan target/debug/vaegan --work "$work" --screenshot "${1:-target/web/page.png}"
