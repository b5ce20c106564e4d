//! Replays the committed fuzzing inputs without a fuzzer: every file of `fuzz/corpus/TARGET`
//! (the seeds) and `fuzz/regressions/TARGET` (inputs that once broke an invariant) goes through
//! the function that the fuzz target `TARGET` calls, which panics when an invariant breaks.
//! The section "Fuzzing" of README.md describes how to run the fuzzer itself.

use std::path::{Path, PathBuf};

use beacon_server::fuzzing;

/// Runs every input of `target` through `check`, and fails if the folders contain no input.
fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs: Vec<PathBuf> = Vec::new();
    for folder in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join(target)) else { continue };
        inputs.extend(entries.map(|entry| entry.expect("a readable folder entry").path()));
    }
    inputs.sort();
    assert!(!inputs.is_empty(), "no committed input for the fuzz target '{target}'");
    for input in inputs {
        let data = std::fs::read(&input).expect("a readable input file");
        eprintln!("{}", input.display());
        check(&data);
    }
}

#[test]
fn query_corpus_holds_invariants() {
    replay("query", fuzzing::query);
}

#[test]
fn filter_corpus_holds_invariants() {
    replay("filter", fuzzing::filter);
}

#[test]
fn orderby_corpus_holds_invariants() {
    replay("orderby", fuzzing::orderby);
}

#[test]
fn select_corpus_holds_invariants() {
    replay("select", fuzzing::select);
}

#[test]
fn apply_corpus_holds_invariants() {
    replay("apply", fuzzing::apply);
}

#[test]
fn body_corpus_holds_invariants() {
    replay("body", fuzzing::body);
}

#[test]
fn skiptoken_corpus_holds_invariants() {
    replay("skiptoken", fuzzing::skiptoken);
}

#[test]
fn batch_corpus_holds_invariants() {
    replay("batch", fuzzing::batch);
}

#[test]
fn token_corpus_holds_invariants() {
    replay("token", fuzzing::token);
}
