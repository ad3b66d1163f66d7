//! alert-ledger: an event-sourced alert ledger.
//!
//! # Layout
//!
//! - [`domain`]: the device aggregate, its commands and events, and the pure fold that
//!   turns an alert's event set into its state. No I/O.
pub mod domain;
