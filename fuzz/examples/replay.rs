//! Runs fuzz targets over inputs on stable Rust, without libFuzzer.
//!
//! - `replay`: every target over every file of its committed corpus (`corpus/<target>/`).
//! - `replay TARGET FILE...`: one target over the given files (a crash artifact, say).
//!
//! Exits 1 when any input panicked, after reporting each one.

use std::panic;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use stirgate_fuzz::{Target, TARGETS};

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let jobs: Vec<(&str, Target, Vec<PathBuf>)> = match args.split_first() {
        None => TARGETS
            .iter()
            .map(|&(name, run)| (name, run, files_in(&corpus.join(name))))
            .collect(),
        Some((target, files)) => match TARGETS.iter().find(|(name, _)| name == target) {
            Some(&(name, run)) => vec![(name, run, files.iter().map(PathBuf::from).collect())],
            None => {
                let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
                eprintln!("unknown target {target}; targets: {}", names.join(", "));
                return ExitCode::from(2);
            }
        },
    };
    let mut failed = 0usize;
    for (name, run, files) in jobs {
        if files.is_empty() {
            eprintln!("{name}: no inputs");
            failed += 1;
            continue;
        }
        for file in &files {
            let data = match std::fs::read(file) {
                Ok(data) => data,
                Err(e) => {
                    eprintln!("{name}: {}: {e}", file.display());
                    failed += 1;
                    continue;
                }
            };
            if panic::catch_unwind(|| run(&data)).is_err() {
                eprintln!("{name}: {} PANICKED", file.display());
                failed += 1;
            }
        }
        println!("{name}: {} inputs", files.len());
    }
    if failed > 0 {
        eprintln!("{failed} failures");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
