//! Logging, set up once: `VENVFS_LOG` takes a tracing filter (`debug`, `venvfs=trace`, ...).

pub fn init() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("VENVFS_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,fuser=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
