//! `stirgate lists add|remove|show`: manages the blocklist and the fast-pass allow list in the
//! store named by the config key `lists.path`, safely while stirgate runs (the server sees a
//! change on its next lookup).
//!
//! Exit status: 0 on success; 1 when the store fails, or `remove` finds no such entry; 2 on a
//! usage or config error (a number that is not a telephone number, a bad config), with the key
//! or the value and the reason on stderr.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};

use crate::config::{Config, DEFAULT_TOML};
use crate::lists::{Backend, ListEntry, ListError, ListKind, ListStore, OnFailure, StoreConfig};

/// Arguments of `stirgate lists`.
#[derive(Debug, Args)]
pub struct ListsArgs {
    /// What to do with the lists.
    #[command(subcommand)]
    pub action: ListsAction,
    /// TOML config file naming the store (`lists.path`); without it the embedded defaults.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

/// The `lists` subcommands.
#[derive(Debug, Subcommand)]
pub enum ListsAction {
    /// Add a number to a list, or replace its entry (expiry and note) when it is there.
    Add {
        /// The list: block (declined with 603) or allow (fast pass: forwarded whatever the
        /// verification says).
        #[arg(long, value_parser = parse_kind)]
        list: ListKind,
        /// The telephone number; separators and a leading + are dropped (RFC 8224 §8.3).
        number: String,
        /// Days until the entry stops applying; without it the entry never expires.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=36_500))]
        expires_days: Option<u64>,
        /// Free text kept with the entry (why, ticket number, ...).
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Remove a number from a list (exit status 1 when it was not on it).
    Remove {
        /// The list: block or allow.
        #[arg(long, value_parser = parse_kind)]
        list: ListKind,
        /// The telephone number, in any form `add` accepts.
        number: String,
    },
    /// Print the unexpired entries.
    Show {
        /// Only this list (block or allow); both without it.
        #[arg(long, value_parser = parse_kind)]
        list: Option<ListKind>,
        /// Print one JSON array of objects (`list`, `number`, `added_at`, `expires_at`, `note`;
        /// times in UNIX seconds, `expires_at` null for never).
        #[arg(long)]
        json: bool,
    },
}

/// Runs `stirgate lists`, printing to stdout; returns the process exit status.
pub fn run(args: &ListsArgs) -> u8 {
    run_with(args, &mut io::stdout().lock())
}

/// Runs `stirgate lists` with its regular output (`show`) written to `out`; messages and errors
/// go to stderr. Returns the process exit status (see the module docs).
pub fn run_with(args: &ListsArgs, out: &mut dyn Write) -> u8 {
    let loaded = match &args.config {
        Some(path) => Config::load(path),
        None => Config::from_toml(DEFAULT_TOML),
    };
    let cfg = match loaded {
        Ok(cfg) => cfg,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("stirgate lists: {e}");
            }
            return 2;
        }
    };
    // A mistyped number is a usage error whatever state the store is in, and creates no file.
    if let ListsAction::Add { number, .. } | ListsAction::Remove { number, .. } = &args.action {
        if stir::tn::canonicalize(number).is_none() {
            let e = ListError::BadNumber {
                number: number.clone(),
            };
            eprintln!("stirgate lists: {e}");
            return 2;
        }
    }
    // A tool: every store failure is reported (exit 1), nothing is queued for later.
    let store_cfg = store_config(&cfg);
    let store = match store_cfg.open(OnFailure::Fail) {
        Ok(store) => store,
        Err(e) => {
            let key = match store_cfg.backend {
                Backend::Redis { .. } => "lists.redis_url",
                _ => "lists.path",
            };
            eprintln!("stirgate lists: {key}: {e}");
            return 1;
        }
    };
    let store = &*store;
    let now = now_unix();
    let result = match &args.action {
        ListsAction::Add {
            list,
            number,
            expires_days,
            note,
        } => add(store, *list, number, *expires_days, note, now),
        ListsAction::Remove { list, number } => remove(store, *list, number),
        ListsAction::Show { list, json } => show(store, *list, *json, now, out),
    };
    match result {
        Ok(code) => code,
        Err(e @ ListError::BadNumber { .. }) => {
            eprintln!("stirgate lists: {e}");
            2
        }
        Err(e) => {
            eprintln!("stirgate lists: {e}");
            1
        }
    }
}

/// The store the config names.
fn store_config(cfg: &Config) -> StoreConfig {
    cfg.lists_store.clone()
}

fn add(
    store: &dyn ListStore,
    kind: ListKind,
    number: &str,
    expires_days: Option<u64>,
    note: &str,
    now: u64,
) -> Result<u8, ListError> {
    let expires_at = expires_days.map(|days| now.saturating_add(days.saturating_mul(86_400)));
    let entry = ListEntry {
        kind,
        number: number.to_owned(),
        added_at: now,
        expires_at,
        note: note.to_owned(),
    };
    store.add(&entry)?;
    // `add` canonicalized the number without failing, so this is the stored form.
    let stored = stir::tn::canonicalize(number).unwrap_or_else(|| number.to_owned());
    match expires_at {
        Some(t) => eprintln!(
            "stirgate lists: {stored} added to the {kind} list until {}",
            rfc3339(t)
        ),
        None => eprintln!("stirgate lists: {stored} added to the {kind} list"),
    }
    Ok(0)
}

fn remove(store: &dyn ListStore, kind: ListKind, number: &str) -> Result<u8, ListError> {
    let removed = store.remove(kind, number)?;
    // `remove` canonicalized the number without failing, so this is the stored form.
    let number = stir::tn::canonicalize(number).unwrap_or_else(|| number.to_owned());
    if removed {
        eprintln!("stirgate lists: {number} removed from the {kind} list");
        Ok(0)
    } else {
        eprintln!("stirgate lists: {number} is not on the {kind} list");
        Ok(1)
    }
}

fn show(
    store: &dyn ListStore,
    kind: Option<ListKind>,
    json: bool,
    now: u64,
    out: &mut dyn Write,
) -> Result<u8, ListError> {
    let entries = store.entries(kind, now)?;
    let written = if json {
        serde_json::to_writer(&mut *out, &entries)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        write_table(&entries, out)
    };
    match written {
        Ok(()) => Ok(0),
        // A closed pipe (`| head`) is the reader's choice, not our failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => {
            eprintln!("stirgate lists: cannot write the output: {e}");
            Ok(1)
        }
    }
}

fn write_table(entries: &[ListEntry], out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<5}  {:<20}  {:<20}  {:<20}  NOTE",
        "LIST", "NUMBER", "ADDED", "EXPIRES"
    )?;
    for e in entries {
        let expires = e.expires_at.map_or_else(|| "never".to_owned(), rfc3339);
        let line = format!(
            "{:<5}  {:<20}  {:<20}  {:<20}  {}",
            e.kind,
            e.number,
            rfc3339(e.added_at),
            expires,
            e.note
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn parse_kind(s: &str) -> Result<ListKind, ListError> {
    s.parse()
}

fn rfc3339(unix: u64) -> String {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(unix))
        .map_or_else(
            || unix.to_string(),
            |t| humantime::format_rfc3339_seconds(t).to_string(),
        )
}

fn now_unix() -> u64 {
    // A clock before 1970 is a broken host; 0 then makes every dated entry look unexpired,
    // which errs on the side of keeping the operator's blocks.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        lists: ListsArgs,
    }

    fn parse(args: &[&str]) -> Result<ListsArgs, clap::Error> {
        TestCli::try_parse_from(std::iter::once("lists").chain(args.iter().copied()))
            .map(|c| c.lists)
    }

    fn config(dir: &tempfile::TempDir) -> String {
        let path = dir.path().join("c.toml");
        let store = dir.path().join("lists.sqlite3");
        // The whole config is validated: the trust anchor has to be readable from here.
        let anchors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs/test-sti-ca.pem");
        let text = format!(
            "[stir]\ntrust_anchors = {:?}\n[lists]\npath = {:?}\n",
            anchors.display().to_string(),
            store.display().to_string()
        );
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn run_args(args: &[&str]) -> (u8, String) {
        let mut out = Vec::new();
        let code = run_with(&parse(args).unwrap(), &mut out);
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn usage_errors_are_caught_by_the_parser() {
        assert!(parse(&["add", "--list", "deny", "1555"]).is_err());
        assert!(parse(&["add", "1555"]).is_err());
        assert!(parse(&["add", "--list", "block", "1555", "--expires-days", "0"]).is_err());
        let args = parse(&["show", "--list", "allow", "--config", "x.toml"]).unwrap();
        assert!(matches!(
            args.action,
            ListsAction::Show {
                list: Some(ListKind::Allow),
                json: false
            }
        ));
        assert_eq!(args.config, Some(PathBuf::from("x.toml")));
    }

    #[test]
    fn add_show_remove() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&dir);
        let (code, _) = run_args(&[
            "--config",
            &cfg,
            "add",
            "--list",
            "allow",
            "+1 (555) 123-0009",
            "--note",
            "mum",
        ]);
        assert_eq!(code, 0);
        let (code, text) = run_args(&["--config", &cfg, "show"]);
        assert_eq!(code, 0);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].starts_with("allow  15551230009 "), "{text}");
        let tail = format!("{:<20}  mum", "never");
        assert!(lines[1].ends_with(&tail), "{text}");
        let (code, json) = run_args(&["--config", &cfg, "show", "--list", "block", "--json"]);
        assert_eq!((code, json.as_str()), (0, "[]\n"));
        // No note, no trailing blanks.
        run_args(&["--config", &cfg, "add", "--list", "block", "15551230010"]);
        let (_, text) = run_args(&["--config", &cfg, "show", "--list", "block"]);
        assert!(text.lines().nth(1).unwrap().ends_with(" never"), "{text:?}");
        assert_eq!(
            run_args(&["--config", &cfg, "remove", "--list", "allow", "15551230009"]).0,
            0
        );
        assert_eq!(
            run_args(&["--config", &cfg, "remove", "--list", "allow", "15551230009"]).0,
            1
        );
        assert_eq!(
            run_args(&["--config", &cfg, "remove", "--list", "allow", "alice"]).0,
            2
        );
    }

    #[test]
    fn bad_config_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.toml").display().to_string();
        assert_eq!(run_args(&["--config", &path, "show"]).0, 2);
    }
}
