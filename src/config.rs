//! Command-line and environment configuration: every option is also an env var.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::FoldConfig;
use crate::store::{redacted_url, ConnectOptions};

#[derive(Debug, Parser)]
#[command(
    name = "alert-ledger",
    version,
    about = "An event-sourced alert ledger"
)]
pub struct Cli {
    /// Log output format.
    #[arg(
        long,
        env = "ALERT_LEDGER_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve(ServeArgs),
    /// Append newline-delimited JSON events from a file (or `-` for stdin).
    Import(ImportArgs),
    /// Rebuild the read models from the log and switch readers over atomically.
    Rebuild(RebuildArgs),
    /// Recompute the read models from the log and compare them with the live tables;
    /// exits 1 on any difference.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ALERT_LEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// TOML file of bearer tokens (`[[tokens]]` with `name`, `token` or `token_env`,
    /// `scopes`); see docs/auth.md. Without it every request is let in, so the server
    /// listens on loopback only unless --allow-unauthenticated is given.
    #[arg(long, env = "ALERT_LEDGER_AUTH_CONFIG")]
    pub auth_config: Option<PathBuf>,
    /// Listen on a non-loopback address without tokens configured (anyone who can reach
    /// the port can then record and read everything).
    #[arg(long, env = "ALERT_LEDGER_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// The Alertmanager label whose value is the device id.
    #[arg(
        long,
        env = "ALERT_LEDGER_ALERTMANAGER_DEVICE_LABEL",
        default_value = crate::integrations::alertmanager::DEFAULT_DEVICE_LABEL
    )]
    pub alertmanager_device_label: String,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// NDJSON file, one event object per line; `-` reads standard input.
    pub file: PathBuf,
    /// Events recorded per database round.
    #[arg(long, env = "ALERT_LEDGER_IMPORT_BATCH", default_value_t = 500,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch_size: u16,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The projection to rebuild; `ledger` (alert_state, alert_episodes, device_summary)
    /// is the only one, and the default.
    #[arg(long, default_value = "ledger", value_parser = ["ledger"])]
    pub projection: String,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// How many differences to print at most.
    #[arg(long, default_value_t = 20)]
    pub max_differences: usize,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

/// Options shared by every command that opens the ledger.
#[derive(Clone, Args)]
pub struct LedgerArgs {
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://alert-ledger.db",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Database connection pool size.
    #[arg(long, env = "ALERT_LEDGER_MAX_CONNECTIONS", default_value_t = 10)]
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection before answering 503.
    #[arg(
        long,
        env = "ALERT_LEDGER_ACQUIRE_TIMEOUT_SECONDS",
        default_value_t = 5
    )]
    pub acquire_timeout_seconds: u64,
    /// How far in the future (seconds past recording) an occurred_at is trusted.
    #[arg(
        long,
        env = "ALERT_LEDGER_MAX_FUTURE_SKEW_SECONDS",
        default_value_t = 300
    )]
    pub max_future_skew_seconds: u32,
    /// Attempts at appending to a contended device stream before answering 503.
    #[arg(long, env = "ALERT_LEDGER_MAX_APPEND_ATTEMPTS", default_value_t = 30,
          value_parser = clap::value_parser!(u16).range(1..=100))]
    pub max_append_attempts: u16,
    /// Notification receivers and routes (TOML; see docs/notifications.md). Without it,
    /// nothing is sent. `import` schedules messages too (subject to `history_cutoff`);
    /// only `serve` delivers them.
    #[arg(long, env = "ALERT_LEDGER_NOTIFY_CONFIG")]
    pub notify_config: Option<PathBuf>,
    /// Fault injection for crash tests: pause this long after an append commits and
    /// before its projection update, so a test can kill the process in between.
    #[arg(
        long,
        env = "ALERT_LEDGER_FAULT_PAUSE_BEFORE_PROJECTION_MS",
        default_value_t = 0,
        hide = true
    )]
    pub fault_pause_before_projection_ms: u64,
}

// Written by hand so that `{:?}` never prints the database password.
impl std::fmt::Debug for LedgerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerArgs")
            .field("database_url", &redacted_url(&self.database_url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_seconds", &self.acquire_timeout_seconds)
            .field("max_future_skew_seconds", &self.max_future_skew_seconds)
            .field("max_append_attempts", &self.max_append_attempts)
            .field("notify_config", &self.notify_config)
            .field(
                "fault_pause_before_projection_ms",
                &self.fault_pause_before_projection_ms,
            )
            .finish()
    }
}

impl LedgerArgs {
    pub fn with_database_url(url: impl Into<String>) -> Self {
        Self {
            database_url: url.into(),
            max_connections: 10,
            acquire_timeout_seconds: 5,
            max_future_skew_seconds: 300,
            max_append_attempts: 30,
            notify_config: None,
            fault_pause_before_projection_ms: 0,
        }
    }

    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            url: self.database_url.clone(),
            max_connections: self.max_connections,
            acquire_timeout: Duration::from_secs(self.acquire_timeout_seconds),
        }
    }

    pub fn fold_config(&self) -> FoldConfig {
        FoldConfig {
            max_future_skew: chrono::Duration::seconds(i64::from(self.max_future_skew_seconds)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_args_debug_hides_the_database_password() {
        let args = LedgerArgs::with_database_url("postgres://ledger:hunter2@db:5432/alerts");
        let printed = format!("{args:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("ledger:***@db"), "{printed}");
    }
}
