//! alert-ledger: an event-sourced alert ledger. Alarms and recoveries are appended to
//! per-device streams; alert state is a pure function of the recorded event set, so the
//! order in which requests arrive never matters.
//!
//! # Layout
//!
//! - [`domain`]: the device aggregate, its commands and events, and the pure fold that
//!   turns an alert's event set into its state and episodes. No I/O.
//! - [`store`]: the event store on SQLite or PostgreSQL (cqrs-es underneath),
//!   migrations, and reads of the log.
//! - [`projections`]: the read-model tables (alert state, episodes, device summary),
//!   kept up to date by applying the fold, and queries on them.
//! - [`ledger`]: the one path that records events: idempotency, bounded conflict
//!   retries, then a projection update.
//! - [`notifications`]: receivers and routes, the outbox written with each projection
//!   change, and the dispatcher that delivers first alerts, reminders and resolves.
//! - [`submission`]: parsing and validating submitted events (HTTP and import).
//! - [`integrations`]: Alertmanager webhooks and PagerDuty Events v2 mapped onto events.
//! - [`http`]: the REST API and its bearer-token authentication; [`error`]: its
//!   problem+json errors.
//! - [`server`]: opening the ledger and serving until shutdown; [`config`]: the
//!   command line; [`config_file`]: reading the TOML files `serve` is configured
//!   with (size limit, UTF-8, parse errors that repeat no value); [`cli`]: the `import`
//!   command.

pub mod cli;
pub mod config;
pub mod config_file;
pub mod domain;
pub mod error;
pub mod http;
pub mod integrations;
pub mod ledger;
pub mod notifications;
pub mod projections;
pub mod server;
pub mod store;
pub mod submission;
