//! The `edge-proxy` binary: parse flags, load config, run. Everything else is in `lib.rs`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use edge_proxy::Config;
use pingora::server::RunArgs;

#[derive(Parser)]
#[command(name = "edge-proxy", version, about = "Security edge proxy")]
struct Cli {
    /// Config file (TOML); env overrides use EDGE_PROXY__SECTION__KEY.
    #[arg(
        long,
        env = "EDGE_PROXY_CONFIG",
        default_value = "config/dev/proxy.toml"
    )]
    config: PathBuf,
    /// Validate the configuration and exit (0 valid, 1 invalid).
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config, &settings::process_env()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edge-proxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check_config {
        println!(
            "edge-proxy: configuration {} is valid",
            cli.config.display()
        );
        return ExitCode::SUCCESS;
    }
    edge_proxy::init_tracing(config.log_format, &config.log_filter);
    tracing::info!(?config, "starting edge-proxy");
    let listen = config.listen;
    match edge_proxy::build(config) {
        Ok(proxy) => {
            tracing::info!(public = %listen, admin = %proxy.admin_addr(), "edge-proxy listening");
            // SIGTERM: graceful (grace period, then drain); SIGINT: fast shutdown.
            proxy.run(RunArgs::default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edge-proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
}
