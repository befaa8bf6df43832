//! `cargo run -p demo-app`: see the crate docs and the README for the settings.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let config = match demo_app::config::Config::from_env() {
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
