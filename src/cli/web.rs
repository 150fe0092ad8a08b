//! `vaegan web`: serves the browser page (training in a tab, on WebGPU) on localhost — the
//! page itself (built into this binary), its WebAssembly (`src/web/build.sh` writes
//! target/web/pkg) and the shipped MNIST, all from one origin, so the page loads its data
//! with plain fetches. Read-only: it serves only those three places.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

const INDEX: &str = include_str!("../web/page/index.html");
const APP: &str = include_str!("../web/page/app.js");

#[derive(Args)]
pub struct WebArgs {
    /// Port on 127.0.0.1 (0: any free port; the URL is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on (127.0.0.1: this machine only).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The wasm-bindgen output (`bash src/web/build.sh` writes it).
    #[arg(long)]
    pkg: Option<PathBuf>,
    /// The MNIST folder the page trains on. Default: the shipped datasets/mnist.
    #[arg(long)]
    data: Option<PathBuf>,
}

/// Under the current directory, else under the source tree this binary was built from.
fn default_pkg() -> PathBuf {
    let here = PathBuf::from("target/web/pkg");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web/pkg")
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        // instantiateStreaming insists on this type.
        Some("wasm") => "application/wasm",
        // Served as bytes, not as a gzip transfer encoding: the page unpacks them in wasm.
        _ => "application/octet-stream",
    }
}

/// A plain file name (no folders, no dot-files): all that `/pkg/` and `/datasets/mnist/` serve.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// What a request's URL asks for: one of the page's own files, a file of `pkg` or of the
/// MNIST folder (by a plain name), or nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Page(&'static str, &'static str),
    Pkg(&'a str),
    Mnist(&'a str),
    NotFound,
}

/// The route of a request's URL (its query and fragment ignored). Only plain names reach the
/// disk, so no URL names a file outside the two folders. What the fuzz target calls.
pub fn route(url: &str) -> Route<'_> {
    match url.split(['?', '#']).next().unwrap_or("/") {
        "/" | "/index.html" => Route::Page(INDEX, "index.html"),
        "/app.js" => Route::Page(APP, "app.js"),
        path => {
            if let Some(name) = path.strip_prefix("/pkg/").filter(|n| plain_name(n)) {
                Route::Pkg(name)
            } else if let Some(name) = path.strip_prefix("/datasets/mnist/").filter(|n| plain_name(n)) {
                Route::Mnist(name)
            } else {
                Route::NotFound
            }
        }
    }
}

pub fn run(args: &WebArgs) -> anyhow::Result<()> {
    let pkg = args.pkg.clone().unwrap_or_else(default_pkg);
    let data = args.data.clone().unwrap_or_else(crate::data::default_mnist);
    let wasm = pkg.join("vaegan_bg.wasm");
    if !wasm.is_file() || !pkg.join("vaegan.js").is_file() {
        anyhow::bail!(
            "{}: no vaegan.js and vaegan_bg.wasm: build the page's WebAssembly first with `bash src/web/build.sh` (needs `rustup target add wasm32-unknown-unknown` and wasm-bindgen-cli; see the README)",
            pkg.display()
        );
    }
    if !data.join("train-images.idx3-ubyte.gz").is_file() {
        anyhow::bail!("{}: no train-images.idx3-ubyte.gz: --data must name a folder with MNIST's gzipped IDX files", data.display());
    }
    let server = tiny_http::Server::http((args.host.as_str(), args.port)).map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let addr = server.server_addr().to_ip().context("the server has no IP address")?;
    println!("serving the vaegan page at http://{addr}/ (WebAssembly from {}, MNIST from {}); Ctrl-C stops", pkg.display(), data.display());
    for request in server.incoming_requests() {
        let url = request.url().split(['?', '#']).next().unwrap_or("/").to_string();
        let (body, name): (Option<Vec<u8>>, &str) = match route(&url) {
            Route::Page(text, name) => (Some(text.as_bytes().to_vec()), name),
            Route::Pkg(name) => (std::fs::read(pkg.join(name)).ok(), name),
            Route::Mnist(name) => (std::fs::read(data.join(name)).ok(), name),
            Route::NotFound => (None, ""),
        };
        let response = match body {
            Some(bytes) => {
                let header = tiny_http::Header::from_bytes("Content-Type", content_type(name)).expect("a valid header");
                // The page changes with the binary and the WebAssembly with each build.
                let fresh = tiny_http::Header::from_bytes("Cache-Control", "no-cache").expect("a valid header");
                request.respond(tiny_http::Response::from_data(bytes).with_header(header).with_header(fresh))
            }
            None => request.respond(tiny_http::Response::from_string(format!("{url}: not found")).with_status_code(404)),
        };
        if let Err(e) = response {
            say!("warning: {url}: the browser went away before the answer was sent ({e})");
        }
    }
    Ok(())
}
