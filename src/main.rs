#[cfg(not(target_arch = "wasm32"))]
fn main() {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`vaegan graph --dump | head`) instead of panicking on the broken pipe.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // wgpu's EGL probe prints "XDG_RUNTIME_DIR is invalid" when it is unset; harmless, so
    // give it a directory before any thread exists.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    if let Err(e) = vaegan::cli::main() {
        // One write: under mpirun each rank's error stays whole.
        vaegan::cli::say_line(format_args!("error: {e:#}"));
        std::process::exit(1);
    }
}

/// The command line is native; in the browser the library is driven by the page
/// (`src/web/`), and this binary does nothing.
#[cfg(target_arch = "wasm32")]
fn main() {}
