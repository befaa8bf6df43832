//! `cargo run -p demo-app`: see the crate docs and the README for the settings.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::time::ChronoUtc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = demo_app::config::Args::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sea_orm_migration=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours for a person at a terminal, plain text in files and pipes.
        .with_ansi(std::io::stdout().is_terminal())
        .with_target(false)
        .with_timer(ChronoUtc::new("%Y-%m-%dT%H:%M:%S%.3fZ".to_owned()))
        .init();
    let config = match demo_app::config::Config::from_args(&args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("demo-app: {error}");
            return ExitCode::from(2);
        }
    };
    match demo_app::run(config).await {
        // Cut short by a second signal: whoever sent it learns that the runs were aborted.
        Ok(stopped) if stopped.forced => ExitCode::from(130),
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo-app: {error}");
            ExitCode::FAILURE
        }
    }
}
