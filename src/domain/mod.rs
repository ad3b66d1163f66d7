//! The domain: what an alarm and a recovery are, the device aggregate that records them,
//! and the pure fold that turns the set of an alert's events into its state.
//!
//! Nothing in here performs I/O. The store and the projections call into this module;
//! this module never calls out.

pub mod aggregate;
pub mod commands;
pub mod events;
pub mod fold;

pub use aggregate::{Device, DeviceError, DeviceServices};
pub use commands::{DeviceCommand, NewEvent};
pub use events::{DeviceEvent, Kind, RecordedEvent, Severity};
pub use fold::{AlertState, Episode, FoldConfig, Status};
