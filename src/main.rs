//! The `alert-ledger` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use alert_ledger::cli::import::import;
use alert_ledger::cli::maintenance::{run_rebuild, run_verify};
use alert_ledger::config::{Cli, Command, LedgerArgs, LogFormat};
use alert_ledger::http::AppState;
use alert_ledger::integrations::alertmanager::AlertmanagerSettings;
use alert_ledger::server;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    match cli.command {
        Command::Serve(args) => {
            let auth = match server::sender_auth(&args) {
                Ok(auth) => auth,
                Err(error) => {
                    tracing::error!("{error}");
                    return ExitCode::FAILURE;
                }
            };
            let mut state = match open(&args.ledger, ExitCode::FAILURE).await {
                Ok(state) => state,
                Err(code) => return code,
            };
            state.auth = std::sync::Arc::new(auth);
            state.alertmanager = std::sync::Arc::new(AlertmanagerSettings {
                device_label: args.alertmanager_device_label.clone(),
            });
            let listener = match TcpListener::bind(args.listen).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::error!(%error, listen = %args.listen, "cannot listen");
                    return ExitCode::FAILURE;
                }
            };
            tracing::info!(listen = %args.listen, engine = state.db.engine(), "alert-ledger serving");
            let db = state.db.clone();
            let grace = std::time::Duration::from_secs(10);
            if let Err(error) = server::run_until_signal(listener, state, grace).await {
                tracing::error!(%error, "server failed");
                return ExitCode::FAILURE;
            }
            db.close().await;
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Command::Rebuild(args) => {
            let state = match open(&args.ledger, ExitCode::FAILURE).await {
                Ok(state) => state,
                Err(code) => return code,
            };
            match run_rebuild(&state.projector).await {
                Ok((report, seconds)) => {
                    println!(
                        "rebuilt projection {} from {} events of {} devices in {:.1}s ({:.0} events/s)",
                        args.projection,
                        report.events,
                        report.devices,
                        seconds,
                        report.events as f64 / seconds.max(1e-9)
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    tracing::error!(%error, "rebuild failed; the live tables are unchanged");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Verify(args) => {
            let state = match open(&args.ledger, ExitCode::from(2)).await {
                Ok(state) => state,
                Err(code) => return code,
            };
            match run_verify(&state.projector, args.max_differences).await {
                Ok(report) => {
                    for difference in &report.differences {
                        println!("{}", difference.0);
                    }
                    println!(
                        "verified {} events of {} devices: {} devices differ",
                        report.events, report.devices, report.devices_with_differences
                    );
                    if report.devices_with_differences == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "verify failed");
                    ExitCode::from(2)
                }
            }
        }
        Command::Import(args) => {
            let state = match open(&args.ledger, ExitCode::FAILURE).await {
                Ok(state) => state,
                Err(code) => return code,
            };
            match import(&state.ledger, &args.file, usize::from(args.batch_size)).await {
                Ok(summary) => {
                    for (line, reason) in &summary.refused {
                        eprintln!("line {line}: refused: {reason}");
                    }
                    println!(
                        "recorded {}, duplicate {}, refused {}",
                        summary.recorded,
                        summary.duplicates,
                        summary.refused.len()
                    );
                    state.db.close().await;
                    if summary.refused.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(2)
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "import failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Open the ledger, or log why not and hand back the command's failure exit code.
async fn open(args: &LedgerArgs, failure: ExitCode) -> Result<AppState, ExitCode> {
    server::open(args).await.map_err(|error| {
        tracing::error!(%error, "cannot open the ledger");
        failure
    })
}
