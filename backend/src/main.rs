//! The `todo-backend` binary: parse flags, load config, start the app. Everything else is in `lib.rs`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use todo_backend::{Application, Config};

/// mimalloc rather than glibc's allocator: a list answer allocates per column of every row (the
/// SQLite driver copies each value out of the statement), and glibc's malloc and free were a fifth
/// of the backend's CPU on a page of todos (bench/backend-perf.sh list).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "todo-backend",
    version,
    about = "The todo service behind edge-proxy"
)]
struct Cli {
    /// Config file (TOML); env overrides use TODO_BACKEND__SECTION__KEY.
    #[arg(
        long,
        global = true,
        env = "TODO_BACKEND_CONFIG",
        default_value = "config/dev/backend.toml"
    )]
    config: PathBuf,
    /// Validate the configuration and exit (0 valid, 1 invalid).
    #[arg(long, global = true)]
    check_config: bool,
    /// Do not run database migrations at start-up (production runs them as a separate step).
    #[arg(long, global = true)]
    no_migrate: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Exit 0 when the running backend is ready (or alive, with --live); for container health checks.
    Healthcheck {
        #[arg(long)]
        live: bool,
    },
    /// Run the database migrations and exit (the release step when `database.migrate = false`).
    Migrate,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(&cli.config, &settings::process_env()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("todo-backend: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if cli.check_config {
        println!(
            "todo-backend: configuration {} is valid",
            cli.config.display()
        );
        return std::process::ExitCode::SUCCESS;
    }
    match cli.command {
        Some(Command::Healthcheck { live }) => return healthcheck(&config, live),
        Some(Command::Migrate) => {
            config.migrate = true;
            return match migrate(config) {
                Ok(()) => {
                    println!("todo-backend: migrations applied");
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("todo-backend: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        None => {}
    }
    if cli.no_migrate {
        config.migrate = false;
    }
    let _log_guard = todo_backend::init_tracing(config.log_format, &config.log_filter);
    match run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("todo-backend: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(config: Config) -> anyhow::Result<()> {
    tracing::info!(?config, "starting todo-backend");
    let app = Application::build(config)
        .await
        .context("starting todo-backend")?;
    tracing::info!(api = %app.local_addr(), admin = %app.admin_addr(), "todo-backend listening");
    app.run(shutdown_signal()).await
}

#[tokio::main(flavor = "current_thread")]
async fn migrate(config: Config) -> anyhow::Result<()> {
    todo_backend::store::connect(&config.database, &config.pool, true)
        .await
        .context("migrating the database")?;
    Ok(())
}

/// `todo-backend healthcheck`: asks the running backend's admin listener.
fn healthcheck(config: &Config, live: bool) -> std::process::ExitCode {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        eprintln!("todo-backend: cannot start a runtime");
        return std::process::ExitCode::FAILURE;
    };
    match rt.block_on(todo_backend::healthcheck(config.admin_listen, live)) {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(line) => {
            eprintln!("{line}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::{Cli, Command};

    #[test]
    fn global_flags_work_before_and_after_the_subcommand() {
        Cli::command().debug_assert();
        for args in [
            &[
                "todo-backend",
                "--config",
                "x.toml",
                "healthcheck",
                "--live",
            ][..],
            &[
                "todo-backend",
                "healthcheck",
                "--config",
                "x.toml",
                "--live",
            ],
            &["todo-backend", "healthcheck", "--live", "--config=x.toml"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(cli.config, std::path::Path::new("x.toml"), "{args:?}");
            assert!(matches!(
                cli.command,
                Some(Command::Healthcheck { live: true })
            ));
        }
        let cli = Cli::try_parse_from(["todo-backend", "migrate", "--check-config"]).unwrap();
        assert!(cli.check_config);
        let cli = Cli::try_parse_from(["todo-backend", "--no-migrate"]).unwrap();
        assert!(cli.no_migrate && cli.command.is_none());
    }
}
