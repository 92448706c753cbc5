//! The `edge-proxy` binary: parse flags, load config, then run the proxy or one operator command.
//! Everything else is in `lib.rs`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edge_proxy::admin::client::{self, AdminCommand};
use edge_proxy::Config;
use pingora::server::RunArgs;

/// mimalloc rather than glibc's allocator: every request allocates its context, header maps and
/// buffers, and malloc and free were about a fifth of the proxy's instructions (issue 13's profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "edge-proxy", version, about = "Security edge proxy")]
struct Cli {
    /// Config file (TOML); env overrides use EDGE_PROXY__SECTION__KEY.
    #[arg(
        long,
        global = true,
        env = "EDGE_PROXY_CONFIG",
        default_value = "config/dev/proxy.toml"
    )]
    config: PathBuf,
    /// Validate the configuration and exit (0 valid, 1 invalid).
    #[arg(long, global = true)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Call the admin API of the running proxy (address and token from the config).
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Exit 0 when the running proxy is ready (or alive, with --live); for container health checks.
    Healthcheck {
        #[arg(long)]
        live: bool,
    },
    /// Print the API version compatibility matrix (routes × versions, status, dates) as Markdown.
    Versions,
}

#[derive(Subcommand)]
enum AdminAction {
    /// Show an account's login-throttle state.
    Status { email: String },
    /// Clear an account's failures, block and lock.
    Unlock { email: String },
    /// Revoke every session of a user.
    RevokeUser {
        user_id: String,
        /// An external issuer's name (`[[issuers]] name`); the user's `sub` at that issuer.
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Revoke one token by its jti.
    RevokeToken {
        jti: String,
        /// An external issuer's name, for a token that issuer minted.
        #[arg(long)]
        issuer: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Versions) = cli.command {
        return match Config::versions_matrix(&cli.config, &settings::process_env()) {
            Ok(matrix) => {
                print!("{matrix}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("edge-proxy: {e}");
                ExitCode::FAILURE
            }
        };
    }
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
    match cli.command {
        None => serve(config),
        Some(cmd) => operate(&config, cmd),
    }
}

fn serve(config: Config) -> ExitCode {
    // pingora's lines about connections the client broke are capped (`obs::log_cap`).
    let _log_guard = edge_proxy::init_tracing_with(
        config.log_format,
        &config.log_filter,
        Some(Box::new(edge_proxy::LogBridge::new())),
    );
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

fn operate(config: &Config, cmd: Command) -> ExitCode {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        eprintln!("edge-proxy: cannot start a runtime");
        return ExitCode::FAILURE;
    };
    let result = rt.block_on(async {
        match cmd {
            Command::Versions => unreachable!("answered before the config is loaded"),
            Command::Healthcheck { live } => client::healthcheck(&config.admin, live).await,
            Command::Admin { action } => {
                let cmd = match action {
                    AdminAction::Status { email } => AdminCommand::Status { email },
                    AdminAction::Unlock { email } => AdminCommand::Unlock { email },
                    AdminAction::RevokeUser { user_id, issuer } => {
                        AdminCommand::RevokeUser { user_id, issuer }
                    }
                    AdminAction::RevokeToken { jti, issuer } => {
                        AdminCommand::RevokeToken { jti, issuer }
                    }
                };
                client::run(&config.admin, &cmd).await
            }
        }
    });
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edge-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::{AdminAction, Cli, Command};

    #[test]
    fn global_flags_work_before_and_after_the_subcommand() {
        Cli::command().debug_assert();
        for args in [
            &["edge-proxy", "--config", "x.toml", "healthcheck", "--live"][..],
            &["edge-proxy", "healthcheck", "--config", "x.toml", "--live"],
            &["edge-proxy", "healthcheck", "--live", "--config=x.toml"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(cli.config, std::path::Path::new("x.toml"), "{args:?}");
            assert!(matches!(
                cli.command,
                Some(Command::Healthcheck { live: true })
            ));
        }
        let cli = Cli::try_parse_from(["edge-proxy", "admin", "status", "a@b.c", "--config", "y"])
            .unwrap();
        assert_eq!(cli.config, std::path::Path::new("y"));
        assert!(matches!(
            cli.command,
            Some(Command::Admin {
                action: AdminAction::Status { .. }
            })
        ));
        let cli = Cli::try_parse_from(["edge-proxy", "healthcheck", "--check-config"]).unwrap();
        assert!(cli.check_config);
    }
}
