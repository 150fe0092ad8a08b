#!/usr/bin/env bash
# Builds the browser page's WebAssembly: the vaegan library for wasm32 (WebGPU backend),
# then its JavaScript bindings, into target/web/pkg, which `vaegan web` serves beside
# src/web/page/. Needs the wasm32 target and wasm-bindgen-cli at the lockfile's version:
#   rustup target add wasm32-unknown-unknown
#   cargo install wasm-bindgen-cli --version "$(sed -n '/^name = "wasm-bindgen"$/{n;s/version = "\(.*\)"/\1/p}' Cargo.lock)"
set -euo pipefail
cd "$(dirname "$0")/../.."
profile="${1:-release}"
cargo rustc --lib --profile "$profile" --target wasm32-unknown-unknown --crate-type cdylib
dir="$profile"
[ "$profile" = dev ] && dir=debug
wasm-bindgen --target web --no-typescript --out-dir target/web/pkg "target/wasm32-unknown-unknown/$dir/vaegan.wasm"
ls -l target/web/pkg
