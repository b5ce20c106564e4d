//! Checks the OpenAPI description that `GET /beta/openapi.json` serves.
//!
//! - `docs/openapi.json` must equal what the code generates, so the committed copy cannot fall
//!   behind. `BEACON_UPDATE_OPENAPI=1 cargo test -p beacon-server --test openapi` rewrites it.
//! - The PyPI package `openapi-spec-validator`, at the version that
//!   `tests/tools/requirements.txt` pins, validates the document against the OpenAPI 3.0
//!   schema and its rules (unique operation ids, declared path parameters, resolvable
//!   references).
//!
//! `tests/tools/setup` at the repository root installs the validator into `tests/tools/venv`.
//! A missing validator fails the test with a message that names that script, so these tests
//! never pass by skipping.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Returns the repository root.
fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Returns the validator's command, or fails the test when it is not installed.
fn validator() -> PathBuf {
    let program = repository_root().join("tests/tools/venv/bin/openapi-spec-validator");
    assert!(
        program.is_file(),
        "{} is missing; run tests/tools/setup at the repository root",
        program.display()
    );
    program
}

/// Validates `document` with openapi-spec-validator, as an OpenAPI 3.0 document.
fn validate(document: &str) -> Output {
    let mut file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    file.write_all(document.as_bytes()).unwrap();
    file.flush().unwrap();
    Command::new(validator())
        .args(["--schema", "3.0", "--validation-errors", "all"])
        .arg(file.path())
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run openapi-spec-validator ({error}); run tests/tools/setup at the \
                 repository root"
            )
        })
}

#[test]
fn committed_document_matches_generated() {
    let path = repository_root().join("docs/openapi.json");
    let generated = beacon_server::openapi_json();
    if std::env::var_os("BEACON_UPDATE_OPENAPI").is_some_and(|value| value == "1") {
        std::fs::write(&path, generated).unwrap();
        return;
    }

    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let first_difference = committed
        .lines()
        .zip(generated.lines())
        .position(|(committed, generated)| committed != generated)
        .map_or_else(|| "the two differ in length".to_owned(), |line| format!("line {}", line + 1));
    assert!(
        committed == generated,
        "{} differs from the document the code generates, first at {first_difference}; run \
         `BEACON_UPDATE_OPENAPI=1 cargo test -p beacon-server --test openapi` to rewrite it, and \
         commit the result",
        path.display()
    );
}

#[test]
fn document_validates_against_openapi_schema() {
    let output = validate(beacon_server::openapi_json());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "openapi-spec-validator rejected the document:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(": OK"), "unexpected validator output:\n{stdout}");
}

#[test]
fn validator_rejects_invalid_document() {
    // Each change breaks a rule of OpenAPI 3.0, so a validator that passes it is not validating.
    let document: Value = serde_json::from_str(beacon_server::openapi_json()).unwrap();
    let mut without_responses = document.clone();
    without_responses["paths"]["/$batch"]["post"].as_object_mut().unwrap().remove("responses");
    let mut undeclared_parameter = document.clone();
    let item =
        undeclared_parameter["paths"]["/aggregatedPolicyCompliances/{id}"].as_object_mut().unwrap();
    item.remove("parameters");
    let mut wrong_type = document.clone();
    wrong_type["components"]["schemas"]["microsoft.graph.ODataErrors.ODataError"]["type"] =
        Value::from("record");
    let mut dangling_reference = document.clone();
    dangling_reference["paths"]["/$batch"]["post"]["responses"]["400"]["$ref"] =
        Value::from("#/components/responses/missing");
    let mut duplicate_operation_id = document;
    duplicate_operation_id["paths"]["/$batch"]["post"]["operationId"] =
        Value::from("service.GetMetadata");

    for (change, broken) in [
        ("an operation without responses", without_responses),
        ("an undeclared path parameter", undeclared_parameter),
        ("an unknown schema type", wrong_type),
        ("a reference to no component", dangling_reference),
        ("a duplicate operation id", duplicate_operation_id),
    ] {
        let output = validate(&serde_json::to_string(&broken).unwrap());
        assert!(!output.status.success(), "openapi-spec-validator accepted {change}");
    }
}
