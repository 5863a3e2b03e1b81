//! Command-line arguments, exactly as docs/interface.md names them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// stirgate: a SIP B2BUA that verifies STIR/SHAKEN caller ID and routes calls by the result.
#[derive(Debug, Parser)]
#[command(name = "stirgate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of docs/interface.md.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the B2BUA (embedded defaults without --config).
    Run(RunArgs),
    /// Load and validate a config; print the effective values or every error.
    CheckConfig(RunArgs),
    /// Verify Identity header value(s) for a call exactly as the B2BUA would.
    Verify(VerifyArgs),
    /// Print an Identity header value signed with a key (tests, demos, load generation).
    Sign(SignArgs),
    /// Manage the blocklist and the fast-pass allow list (also while stirgate runs).
    Lists(crate::lists_cmd::ListsArgs),
}

/// Arguments of `run` and `check-config`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML config file; without it the embedded defaults are used.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// An Identity header value; repeat for several headers.
    #[arg(long = "identity", required = true)]
    pub identity: Vec<String>,
    /// The calling number (From / P-Asserted-Identity).
    #[arg(long)]
    pub from: String,
    /// The called number (To / Request-URI).
    #[arg(long)]
    pub to: String,
    /// Verification clock as UNIX seconds (iat freshness, certificate validity).
    #[arg(long)]
    pub now: Option<u64>,
    /// PEM file or directory of STI-CA roots; repeatable. Defaults to the configured trust store.
    #[arg(long = "trust-anchors")]
    pub trust_anchors: Vec<PathBuf>,
    /// Allow http:// and loopback x5u URLs (tests against a local certificate server only).
    #[arg(long)]
    pub allow_http_x5u: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// PEM file with the P-256 private key.
    #[arg(long)]
    pub key: PathBuf,
    /// Certificate URL to put in the PASSporT and the info parameter.
    #[arg(long)]
    pub x5u: String,
    /// Attestation level: A, B or C.
    #[arg(long)]
    pub attest: String,
    /// Originating telephone number.
    #[arg(long)]
    pub orig: String,
    /// Destination telephone number; repeatable.
    #[arg(long, required = true)]
    pub dest: Vec<String>,
    /// Origination identifier (a UUID); random when absent.
    #[arg(long)]
    pub origid: Option<String>,
    /// Issued-at time as UNIX seconds; now when absent.
    #[arg(long)]
    pub iat: Option<u64>,
    /// Print this many values, one per line, each with its own random origid (load
    /// generation: one process instead of one per call). Without it: one value.
    #[arg(long, conflicts_with = "origid", value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub count: Option<u32>,
    /// Rich Call Data (RFC 9795): the caller's display name (`rcd.nam`).
    #[arg(long)]
    pub rcd_nam: Option<String>,
    /// Rich Call Data: an alternate presentation number (`rcd.apn`).
    #[arg(long)]
    pub rcd_apn: Option<String>,
    /// Rich Call Data: the URL of the caller's icon (`rcd.icn`).
    #[arg(long)]
    pub rcd_icn: Option<String>,
    /// A file holding the icon's content as served: its SHA-256 goes into `rcdi` for `/icn`.
    #[arg(long, requires = "rcd_icn")]
    pub rcd_icn_file: Option<PathBuf>,
    /// The call reason (`crn`).
    #[arg(long)]
    pub crn: Option<String>,
}
