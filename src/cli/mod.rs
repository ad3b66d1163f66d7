//! Command-line commands other than `serve`.

pub mod import;
pub mod maintenance;
