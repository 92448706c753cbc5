//! `cargo run --release` at the repository root: the whole stack on embedded defaults.
//!
//! Generates dev secrets under `./data/` on first run (kept, git-ignored, mode 0600), starts
//! todo-backend (SQLite under `./data/`) and edge-proxy (in-process session store) in this process
//! from the dev profile, prints the URLs and a first curl session, and stops both on Ctrl-C.
//! Production runs the two binaries separately (`edge-proxy`, `todo-backend`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use clap::Parser;
use rand::RngCore as _;

#[derive(Parser)]
#[command(
    name = "stack",
    about = "Run edge-proxy in front of todo-backend on embedded defaults"
)]
struct Cli {
    /// Profile directory holding proxy.toml and backend.toml.
    #[arg(long, default_value = "config/dev")]
    profile: PathBuf,
    /// Where generated dev secrets and the SQLite database live (the dev profile points here).
    #[arg(long, default_value = "data")]
    data: PathBuf,
}

/// Writes `contents` to `path` once, readable by the owner only; an existing file is kept.
fn ensure_secret(path: &Path, contents: impl FnOnce() -> String) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{}", contents()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::STANDARD.encode(buf)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stack: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cli.data)
        .with_context(|| format!("creating {}", cli.data.display()))?;
    ensure_secret(&cli.data.join("jwt.key"), || random_b64(32))?;
    ensure_secret(&cli.data.join("identity.secret"), || random_b64(32))?;
    ensure_secret(&cli.data.join("admin.token"), || {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode({
            let mut b = [0u8; 32];
            rand::rng().fill_bytes(&mut b);
            b
        })
    })?;

    let env = settings::process_env();
    let backend_cfg = todo_backend::Config::load(&cli.profile.join("backend.toml"), &env)
        .context("loading the backend config")?;
    let proxy_cfg = edge_proxy::Config::load(&cli.profile.join("proxy.toml"), &env)
        .context("loading the proxy config")?;
    let _log_guard = edge_proxy::init_tracing(proxy_cfg.log_format, &proxy_cfg.log_filter);

    // The backend runs on its own runtime thread; pingora owns the main thread.
    let rt = tokio::runtime::Runtime::new().context("starting the backend runtime")?;
    let backend = rt
        .block_on(todo_backend::Application::build(backend_cfg))
        .context("starting todo-backend")?;
    let (backend_api, backend_admin) = (backend.local_addr(), backend.admin_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let backend_thread = std::thread::spawn(move || {
        rt.block_on(backend.run(async {
            let _ = stop_rx.await;
        }))
    });

    let public = proxy_cfg.listen;
    let proxy = edge_proxy::build(proxy_cfg).context("starting edge-proxy")?;
    let admin = proxy.admin_addr();
    println!(
        "\nedge-proxy  http://{public}   (admin http://{admin}: /healthz /readyz /metrics)\n\
         todo-backend http://{backend_api} (admin http://{backend_admin}: /health/live /health/ready /metrics)\n\
         data and dev secrets: {data}/\n\n\
         Try it (everything goes through the proxy):\n\
         \x20 curl -s -X POST http://{public}/auth/register -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"email\":\"alice@example.com\",\"password\":\"correct horse battery\"}}'\n\
         \x20 TOKEN=$(curl -s -X POST http://{public}/auth/login -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"email\":\"alice@example.com\",\"password\":\"correct horse battery\"}}' | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')\n\
         \x20 curl -s -X POST http://{public}/todos -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"title\":\"try edge-proxy\"}}'\n\
         \x20 curl -s http://{public}/todos -H \"authorization: Bearer $TOKEN\"\n\
         \x20 curl -s -X POST http://{public}/auth/logout -H \"authorization: Bearer $TOKEN\"\n\n\
         Ctrl-C stops everything.\n",
        data = cli.data.display(),
    );
    proxy.run(pingora::server::RunArgs::default());

    let _ = stop_tx.send(());
    backend_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the backend thread panicked"))?
        .context("todo-backend")?;
    Ok(())
}
