//! stirgate: the binary crate's library half — CLI, configuration, the engine that runs the
//! sans-io cores on tokio, the metrics exporter, call records and signals.

pub mod admin_access;
pub mod admin_api;
pub mod call_verify;
pub mod cdr;
pub mod cli;
pub mod config;
pub mod dns;
pub mod engine;
pub mod http_serve;
pub mod lists;
pub mod lists_cmd;
mod lists_redis;
mod lists_snapshot;
pub mod metrics;
pub mod notify;
pub mod realtime;
pub mod redirect;
pub mod run;
pub mod status;
pub mod stir_cmd;
pub mod vs;
