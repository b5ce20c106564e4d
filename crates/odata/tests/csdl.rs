//! Checks the metadata document with tools from outside Beacon.
//!
//! - `xmllint` (Debian's libxml2-utils) validates `csdl::xml()` against the OASIS CSDL XML
//!   schemas `edmx.xsd` and `edm.xsd` (OData 4.01, which also accept 4.0 documents), as the npm
//!   package `odata-csdl` ships them.
//! - The CSDL XML-to-JSON converter of the same package turns `csdl::xml()` into CSDL JSON, which
//!   must equal `csdl::json()`, so the two representations state the same model.
//!
//! `tests/tools/setup` at the repository root installs both tools. A missing tool fails the test
//! with a message that names that script, so these tests never pass by skipping.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use beacon_odata::csdl;
use serde_json::Value;

/// Returns `tests/tools` at the repository root.
fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tools")
}

/// Returns the installed `odata-csdl` package, or fails the test when it is missing.
fn odata_csdl() -> PathBuf {
    let package = tools_dir().join("node_modules/odata-csdl");
    assert!(
        package.join("schemas/edmx.xsd").is_file(),
        "{} is missing; run tests/tools/setup at the repository root",
        package.display()
    );
    package
}

/// Runs `program` with `args`, or fails the test when the program cannot be started.
fn run(program: &str, args: &[&Path]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|error| {
        panic!("cannot run {program} ({error}); run tests/tools/setup at the repository root")
    })
}

/// Writes `text` to a new temporary file.
fn temporary_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".xml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.flush().unwrap();
    file
}

/// Validates `document` with xmllint against the OASIS schemas, in place in the package
/// because `edmx.xsd` imports `edm.xsd` by a relative path.
fn validate(document: &str) -> Output {
    let schema = odata_csdl().join("schemas/edmx.xsd");
    let file = temporary_file(document);
    run("xmllint", &[Path::new("--noout"), Path::new("--schema"), &schema, file.path()])
}

#[test]
fn xml_validates_against_oasis_schemas() {
    let output = validate(&csdl::xml());
    assert!(
        output.status.success(),
        "xmllint rejected the metadata document:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains(" validates"));
}

#[test]
fn schema_validation_rejects_invalid_document() {
    // Each change breaks a rule of the schemas, so a validator that passes it is not validating.
    let document = csdl::xml();
    let invalid = [
        document.replacen("Nullable=\"false\"", "Nullable=\"no\"", 1),
        document.replacen("<Key>", "<Keys>", 1).replacen("</Key>", "</Keys>", 1),
        document.replacen("Version=\"4.0\"", "Version=\"3.0\"", 1),
    ];
    for broken in invalid {
        assert_ne!(broken, document);
        let output = validate(&broken);
        assert!(!output.status.success(), "xmllint accepted an invalid document:\n{broken}");
    }
}

#[test]
fn converted_xml_equals_metadata_json() {
    let converter = odata_csdl();
    let file = temporary_file(&csdl::xml());

    // The converter reports problems in the model through `messages`, and throws on them with
    // `strict`. Either fails the test.
    let script = r#"
        const { xml2json } = require(process.argv[1]);
        const messages = [];
        const json = xml2json(require("fs").readFileSync(process.argv[2]), { messages, strict: true });
        if (messages.length > 0) {
            console.error(messages.map((m) => m.message).join("\n"));
            process.exit(1);
        }
        process.stdout.write(JSON.stringify(json));
    "#;
    let output = run("node", &[Path::new("-e"), Path::new(script), &converter, file.path()]);
    assert!(
        output.status.success(),
        "the odata-csdl converter failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let converted: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let expected = csdl::json();
    if let Some(difference) = first_difference(&converted, &expected, "") {
        panic!(
            "CSDL JSON converted from csdl::xml() differs from csdl::json() at {difference}\n\
             converted:\n{}\ncsdl::json():\n{}",
            serde_json::to_string_pretty(&converted).unwrap(),
            serde_json::to_string_pretty(&expected).unwrap()
        );
    }
}

/// Returns the JSON path of the first place where `left` and `right` differ, with both values.
fn first_difference(left: &Value, right: &Value, path: &str) -> Option<String> {
    match (left, right) {
        (Value::Object(left_members), Value::Object(right_members)) => {
            let mut names: Vec<&String> = left_members.keys().chain(right_members.keys()).collect();
            names.sort();
            names.dedup();
            names.into_iter().find_map(|name| {
                let member_path = format!("{path}/{name}");
                match (left_members.get(name), right_members.get(name)) {
                    (Some(left), Some(right)) => first_difference(left, right, &member_path),
                    (left, right) => Some(format!("{member_path}: {left:?} and {right:?}")),
                }
            })
        }
        (Value::Array(left_items), Value::Array(right_items))
            if left_items.len() == right_items.len() =>
        {
            left_items.iter().zip(right_items).enumerate().find_map(|(index, (left, right))| {
                first_difference(left, right, &format!("{path}/{index}"))
            })
        }
        _ if left == right => None,
        _ => Some(format!("{path}: {left} and {right}")),
    }
}
