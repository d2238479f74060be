//! `cstor`: the one binary of the cStor operators in Rust.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod migrate;
mod webhook;

#[derive(Parser, Debug)]
#[command(name = "cstor", version, about = "cStor operators in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the product on the embedded local default: a real control plane on loopback,
    /// our CRDs and N nodes, in the foreground until Ctrl-C.
    Up {
        /// Number of Node objects to create.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// State directory (one `cstor up` per directory).
        #[arg(long, env = "CSTOR_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Run the admission webhook server (HTTPS): validation, mutation, certificates.
    Webhook(Box<webhook::WebhookArgs>),
    /// Plan the move of old-operator objects to their current form.
    #[command(subcommand)]
    Migrate(migrate::MigrateCmd),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,kube_client::client::builder=off")
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(migrate::PROBLEMS_FOUND),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `Ok(false)`: the command ran and found problems (a dry run's findings).
async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Cmd::Up { nodes, state_dir } => {
            let opts = cstor_local::up::UpOptions {
                state_dir: state_dir.unwrap_or_else(cstor_local::up::default_state_dir),
                nodes,
                cstor_exe: std::env::current_exe()?,
            };
            cstor_local::up::run(opts).await?;
        }
        Cmd::Webhook(args) => webhook::run(*args).await?,
        Cmd::Migrate(cmd) => return migrate::run(cmd).await,
    }
    Ok(true)
}
