//! stirgate: the binary crate's library half — CLI, configuration, the engine that runs the
//! sans-io cores on tokio, the metrics exporter and signals.

pub mod cli;
pub mod run;
pub mod stir_cmd;
