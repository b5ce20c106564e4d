//! `beacon import` and `beacon export` run as processes against the store of a data folder:
//! SQLite, or with `BEACON_TEST_STORE=postgres` the folder's PostgreSQL schema.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Runs `beacon COMMAND` on the store of `data_dir` with extra arguments.
fn beacon(command: &str, data_dir: &Path, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    Command::new(beacon_binary())
        .arg(command)
        .arg("--data-dir")
        .arg(data_dir)
        .args(database_args(data_dir, &args))
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs a command that must succeed, and returns its standard output.
fn succeed(command: &str, data_dir: &Path, args: &[&str]) -> String {
    let output = beacon(command, data_dir, args);
    assert!(
        output.status.success(),
        "beacon {command} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs a command that must fail, and returns its standard error.
fn fail(command: &str, data_dir: &Path, args: &[&str]) -> String {
    let output = beacon(command, data_dir, args);
    assert!(!output.status.success(), "beacon {command} {args:?} succeeded");
    String::from_utf8(output.stderr).unwrap()
}

/// Exports the folder's rows as NDJSON and parses them.
fn export_rows(data_dir: &Path) -> Vec<Value> {
    succeed("export", data_dir, &[])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Writes `text` to a file in `dir` and returns its path as text.
fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Rows that test every value a round trip must keep: Int64 values past 2^53, 7-digit
/// fractions, quotes, commas and line breaks in names, nulls and empty strings.
fn hard_rows() -> Vec<Value> {
    vec![
        json!({
            "id": "a,1",
            "tenantId": "4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a",
            "tenantDisplayName": "Contoso \"Ltd\", Europe\nsecond line\r\nthird",
            "compliancePolicyId": "",
            "compliancePolicyName": "  padded  ",
            "compliancePolicyType": "deviceCompliancePolicy",
            "compliancePolicyPlatform": "windows10AndLater",
            "numberOfCompliantDevices": 9_007_199_254_740_993_i64,
            "numberOfNonCompliantDevices": i64::MAX,
            "numberOfErrorDevices": 0,
            "policyModifiedDateTime": "2024-02-12T09:15:00Z",
            "lastRefreshedDateTime": "2024-03-01T07:30:00.1234567Z"
        }),
        json!({
            "id": "b\"quoted\"",
            "tenantId": null,
            "tenantDisplayName": "Fabrikam, Inc. – ünïcödé ✓",
            "compliancePolicyId": null,
            "compliancePolicyName": null,
            "compliancePolicyType": null,
            "compliancePolicyPlatform": null,
            "numberOfCompliantDevices": null,
            "numberOfNonCompliantDevices": 1,
            "numberOfErrorDevices": null,
            "policyModifiedDateTime": "2024-02-12T07:15:00.1Z",
            "lastRefreshedDateTime": null
        }),
        json!({"id": "c", "tenantDisplayName": ",", "lastRefreshedDateTime": "2024-03-01T07:30:00.0000001Z"}),
    ]
}

/// Writes rows as NDJSON text.
fn ndjson(rows: &[Value]) -> String {
    rows.iter().map(|row| format!("{row}\n")).collect()
}

#[tokio::test]
async fn ndjson_round_trip_is_exact() {
    let (first, second) = (DataFolder::new(), DataFolder::new());
    let files = tempfile::tempdir().unwrap();
    let input = write_file(files.path(), "rows.ndjson", &ndjson(&hard_rows()));

    succeed("import", first.path(), &[&input]);
    let exported = succeed("export", first.path(), &[]);
    let exported_file = write_file(files.path(), "exported.ndjson", &exported);
    succeed("import", second.path(), &[&exported_file]);
    let again = succeed("export", second.path(), &[]);

    assert_eq!(again, exported);
    let rows: Vec<Value> = exported.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3);
    for (row, given) in rows.iter().zip(hard_rows()) {
        for (name, value) in given.as_object().unwrap() {
            assert_eq!(&row[name], value, "{name} of {}", given["id"]);
        }
    }
    // Int64 past 2^53 is written as the exact integer, not a rounded double.
    assert!(exported.contains("\"numberOfCompliantDevices\":9007199254740993,"), "{exported}");
    assert!(exported.contains("\"numberOfNonCompliantDevices\":9223372036854775807,"));
}

/// Returns `count` rows that repeat [`hard_rows`] under ids that sort in input order.
fn numbered_rows(count: usize) -> Vec<Value> {
    let hard = hard_rows();
    (0..count)
        .map(|i| {
            let mut row = hard[i % hard.len()].clone();
            row["id"] = json!(format!("{i:03}-{}", row["id"].as_str().unwrap()));
            row
        })
        .collect()
}

#[tokio::test]
async fn import_of_many_rows_keeps_every_value() {
    // 70 rows are staged as two inserts of 32 rows each and 6 single-row inserts.
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let given = numbered_rows(70);
    let input = write_file(files.path(), "rows.ndjson", &ndjson(&given));

    succeed("import", folder.path(), &[&input]);

    let rows = export_rows(folder.path());
    assert_eq!(rows.len(), given.len());
    for (row, given) in rows.iter().zip(&given) {
        for (name, value) in given.as_object().unwrap() {
            assert_eq!(&row[name], value, "{name} of {}", given["id"]);
        }
    }
}

#[tokio::test]
async fn repeated_id_past_first_rows_names_both_lines() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let mut given = numbered_rows(70);
    given[66]["id"] = given[40]["id"].clone();
    let input = write_file(files.path(), "rows.ndjson", &ndjson(&given));

    let error = fail("import", folder.path(), &[&input]);

    assert!(error.contains("rows.ndjson line 67"), "{error}");
    assert!(error.contains("is already used by"), "{error}");
    assert!(error.contains("rows.ndjson line 41;"), "{error}");
    assert_eq!(export_rows(folder.path()).len(), 0);
}

#[tokio::test]
async fn csv_round_trip_is_exact() {
    let (first, second) = (DataFolder::new(), DataFolder::new());
    let files = tempfile::tempdir().unwrap();
    let input = write_file(files.path(), "rows.ndjson", &ndjson(&hard_rows()));
    succeed("import", first.path(), &[&input]);

    let csv = succeed("export", first.path(), &["--format", "csv"]);
    let csv_file = write_file(files.path(), "rows.csv", &csv);
    succeed("import", second.path(), &[&csv_file]);

    assert_eq!(succeed("export", second.path(), &["--format", "csv"]), csv);
    assert_eq!(export_rows(second.path()), export_rows(first.path()));
    // Null is an empty field and the empty string a quoted one.
    assert!(csv.contains("\"a,1\",4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a,"), "{csv}");
    assert!(csv.contains(",\"\",  padded  ,"), "{csv}");
    assert!(csv.contains("\r\nc,,\",\",,,,,,,,,2024-03-01T07:30:00.0000001Z\r\n"), "{csv}");
}

#[tokio::test]
async fn export_writes_to_file_with_filter() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let input = write_file(files.path(), "rows.ndjson", &ndjson(&hard_rows()));
    succeed("import", folder.path(), &[&input]);

    let output = files.path().join("out.ndjson");
    let filter = "numberOfNonCompliantDevices gt 0 and tenantId eq null";
    let stdout = succeed("export", folder.path(), &["--filter", filter, output.to_str().unwrap()]);

    assert_eq!(stdout, "");
    let written = std::fs::read_to_string(&output).unwrap();
    let ids: Vec<Value> =
        written.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].clone()).collect();
    assert_eq!(ids, [json!("b\"quoted\"")]);
}

#[tokio::test]
async fn bad_row_stops_import_and_stores_nothing() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let text =
        "{\"id\":\"ok1\"}\n\n{\"id\":\"bad\",\"numberOfErrorDevices\":-3}\n{\"id\":\"ok2\"}\n";
    let input = write_file(files.path(), "rows.ndjson", text);

    let error = fail("import", folder.path(), &[&input]);

    assert!(error.contains("rows.ndjson line 3"), "{error}");
    assert!(error.contains("property 'numberOfErrorDevices'"), "{error}");
    assert!(error.contains("-3 is negative"), "{error}");
    assert!(error.contains("Nothing was imported"), "{error}");
    assert_eq!(export_rows(folder.path()), Vec::<Value>::new());
}

#[tokio::test]
async fn bad_csv_value_names_line_and_property() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let text =
        "id,tenantDisplayName,lastRefreshedDateTime\r\nx,\"two\nlines\",\r\ny,b,yesterday\r\n";
    let input = write_file(files.path(), "rows.csv", text);

    let error = fail("import", folder.path(), &[&input]);

    assert!(error.contains("rows.csv line 4"), "{error}");
    assert!(error.contains("property 'lastRefreshedDateTime'"), "{error}");
    assert!(error.contains("'yesterday' is not a DateTimeOffset"), "{error}");
    assert_eq!(export_rows(folder.path()).len(), 0);
}

/// Returns `count` NDJSON lines `{"id":"r0001",…}`, with a negative counter on each line
/// number in `bad`.
fn rows_with_bad_lines(count: usize, bad: &[usize]) -> String {
    (1..=count)
        .map(|line| {
            let errors = if bad.contains(&line) { -1 } else { 0 };
            format!("{{\"id\":\"r{line:04}\",\"numberOfErrorDevices\":{errors}}}\n")
        })
        .collect()
}

#[tokio::test]
async fn first_bad_row_of_many_stops_import() {
    // Rows are checked in chunks of up to 512 on several threads, and the first bad row in
    // input order must still be the one named.
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let input = write_file(files.path(), "rows.ndjson", &rows_with_bad_lines(3000, &[1700, 2900]));

    let error = fail("import", folder.path(), &[&input]);

    assert!(error.contains("rows.ndjson line 1700:"), "{error}");
    assert!(!error.contains("line 2900"), "{error}");
    assert_eq!(export_rows(folder.path()).len(), 0);
}

#[tokio::test]
async fn rejects_of_many_rows_keep_input_order() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let bad: Vec<usize> = (1..=3000).filter(|line| line % 7 == 3).collect();
    let input = write_file(files.path(), "rows.ndjson", &rows_with_bad_lines(3000, &bad));
    let rejects = files.path().join("rejects.ndjson");

    let output =
        beacon("import", folder.path(), &["--skip-invalid", rejects.to_str().unwrap(), &input]);

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<u64> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["line"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = bad.iter().map(|&line| line as u64).collect();
    assert_eq!(lines, expected);
    let rows = export_rows(folder.path());
    assert_eq!(rows.len(), 3000 - bad.len());
    assert_eq!(rows[2]["id"], "r0004");
}

#[tokio::test]
async fn bad_csv_value_before_malformed_record_is_named() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let mut text = "id,numberOfErrorDevices\r\n".to_owned();
    for line in 2..=2000 {
        let errors = if line == 900 { "-1" } else { "0" };
        text.push_str(&format!("r{line},{errors}\r\n"));
    }
    text.push_str("bad\"quote,0\r\n");
    let input = write_file(files.path(), "rows.csv", &text);

    let error = fail("import", folder.path(), &[&input]);
    assert!(error.contains("rows.csv line 900:"), "{error}");

    // With the bad value sent to the rejects file, the malformed record stops the import.
    let rejects = files.path().join("rejects.ndjson");
    let error =
        fail("import", folder.path(), &["--skip-invalid", rejects.to_str().unwrap(), &input]);
    assert!(error.contains("line 2001: a quote inside an unquoted field"), "{error}");
    let rejected = std::fs::read_to_string(&rejects).unwrap();
    assert!(rejected.contains("\"line\":900"), "{rejected}");
    assert_eq!(export_rows(folder.path()).len(), 0);
}

#[tokio::test]
async fn seed_view_applies_its_create_rules() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let mut row = seed_example();
    row["id"] = json!("s1");
    let complete = write_file(files.path(), "seed.ndjson", &format!("{row}\n"));
    let partial = write_file(files.path(), "partial.ndjson", "{\"organizationId\":\"x\"}\n");

    let error = fail("import", folder.path(), &["--view", "seed", &partial]);
    assert!(error.contains("partial.ndjson line 1"), "{error}");
    assert!(error.contains("property 'organizationDisplayName'"), "{error}");
    assert!(error.contains("is missing") || error.contains("are missing"), "{error}");

    succeed("import", folder.path(), &["--view", "seed", &complete]);
    let exported = succeed("export", folder.path(), &["--view", "seed"]);
    let read: Value = serde_json::from_str(exported.trim()).unwrap();
    assert_eq!(read["organizationDisplayName"], "Contoso Ltd");
    assert_eq!(read["lastRefreshedDateTime"], "2024-03-01T07:30:00.1234567Z");
}

#[tokio::test]
async fn skip_invalid_writes_rejects_and_stores_the_rest() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let text = "{\"id\":\"ok1\"}\n{\"id\":\"bad\",\"bogus\":1}\nnot json\n{\"id\":\"ok2\"}\n";
    let input = write_file(files.path(), "rows.ndjson", text);
    let rejects = files.path().join("rejects.ndjson");

    let output =
        beacon("import", folder.path(), &["--skip-invalid", rejects.to_str().unwrap(), &input]);

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = String::from_utf8(output.stderr).unwrap();
    assert!(summary.contains("read 4 rows: stored 2, skipped 0, rejected 2"), "{summary}");
    let ids: Vec<Value> = export_rows(folder.path()).iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, [json!("ok1"), json!("ok2")]);

    let lines: Vec<Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["line"], 2);
    assert_eq!(lines[0]["property"], "bogus");
    assert!(lines[0]["reason"].as_str().unwrap().contains("does not exist"), "{}", lines[0]);
    assert_eq!(lines[0]["input"], "{\"id\":\"bad\",\"bogus\":1}");
    assert_eq!(lines[1]["line"], 3);
    assert_eq!(lines[1]["property"], Value::Null);
    assert_eq!(lines[1]["input"], "not json");
    assert_eq!(lines[1].get("inputBase64"), None, "{}", lines[1]);
}

#[tokio::test]
async fn rejected_invalid_utf8_keeps_its_bytes() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let bad_line: &[u8] = b"{\"id\":\"a\",\"tenantDisplayName\":\"\xff\"}";
    let mut text = bad_line.to_vec();
    text.extend_from_slice(b"\n{\"id\":\"b\"}\n");
    let input = files.path().join("rows.ndjson");
    std::fs::write(&input, &text).unwrap();
    let rejects = files.path().join("rejects.ndjson");

    let output = beacon(
        "import",
        folder.path(),
        &["--skip-invalid", rejects.to_str().unwrap(), input.to_str().unwrap()],
    );

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let line: Value =
        serde_json::from_str(std::fs::read_to_string(&rejects).unwrap().trim_end()).unwrap();
    assert_eq!(line["input"], "{\"id\":\"a\",\"tenantDisplayName\":\"\u{FFFD}\"}");
    let encoded = line["inputBase64"].as_str().unwrap();
    let decoded = base64::Engine::decode(&base64::prelude::BASE64_STANDARD, encoded).unwrap();
    assert_eq!(decoded, bad_line);
}

#[tokio::test]
async fn csv_line_with_invalid_utf8_is_named() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let input = files.path().join("rows.csv");
    std::fs::write(&input, b"id,tenantDisplayName\na,ok\nb,\xff\n").unwrap();

    let error = fail("import", folder.path(), &[input.to_str().unwrap()]);

    assert!(error.contains("rows.csv line 3"), "{error}");
    assert!(error.contains("not valid UTF-8 (byte 3 of the line"), "{error}");
    assert_eq!(export_rows(folder.path()).len(), 0);
}

#[tokio::test]
async fn failed_import_names_the_rejects_file_it_wrote() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let first = write_file(files.path(), "first.ndjson", "{\"id\":\"a\"}\n");
    let second =
        write_file(files.path(), "second.ndjson", "{\"id\":\"b\",\"bogus\":1}\n{\"id\":\"a\"}\n");
    let rejects = files.path().join("rejects.ndjson");
    succeed("import", folder.path(), &[&first]);

    let error =
        fail("import", folder.path(), &["--skip-invalid", rejects.to_str().unwrap(), &second]);

    assert!(error.contains("the id 'a' already exists"), "{error}");
    let expected = format!("The rejects file {} was written", rejects.display());
    assert!(error.contains(&expected), "{error}");
    assert!(rejects.exists());
    assert_eq!(export_rows(folder.path()).len(), 1);
}

#[tokio::test]
async fn existing_rejects_file_is_left_alone() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let input = write_file(files.path(), "rows.ndjson", "{\"id\":\"ok1\"}\nnot json\n");
    let kept = write_file(files.path(), "kept.txt", "a file the user needs\n");

    // Naming an existing file, or the input itself, as the rejects file stops the import.
    let error = fail("import", folder.path(), &["--skip-invalid", &kept, &input]);
    assert!(error.contains("must be a new file"), "{error}");
    let error = fail("import", folder.path(), &["--skip-invalid", &input, &input]);
    assert!(error.contains("must be a new file"), "{error}");

    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "a file the user needs\n");
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "{\"id\":\"ok1\"}\nnot json\n");
    // The import stopped before it opened the store, so no row can be there.
    if test_postgres_url().is_some() || folder.path().join("beacon.sqlite3").exists() {
        assert!(export_rows(folder.path()).is_empty());
    }
}

#[tokio::test]
async fn settings_file_chooses_the_database_for_import_and_export() {
    if test_postgres_url().is_some() {
        // The run's --database flag would win over the file, which names a SQLite file.
        eprintln!("SKIPPED: the settings file names a SQLite database; the SQLite run covers it");
        return;
    }
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let other = files.path().join("other.sqlite3");
    std::fs::create_dir_all(folder.path()).unwrap();
    write_file(
        folder.path(),
        "beacon.toml",
        &format!("database = \"{}\"\n", other.to_str().unwrap()),
    );
    let input = write_file(files.path(), "rows.ndjson", "{\"id\":\"r1\"}\n");

    succeed("import", folder.path(), &[&input]);

    // The rows went to the database the settings file names, as `serve` would use it.
    assert!(other.is_file());
    assert!(!folder.path().join("beacon.sqlite3").exists());
    let exported = succeed("export", folder.path(), &[]);
    assert!(exported.contains("\"id\":\"r1\""), "{exported}");
}

#[tokio::test]
async fn export_of_missing_store_fails_and_creates_nothing() {
    if test_postgres_url().is_some() {
        eprintln!("SKIPPED: a PostgreSQL schema has no data folder to mistype");
        return;
    }
    let files = tempfile::tempdir().unwrap();
    let missing = files.path().join("mistyped");

    let error = fail("export", &missing, &[]);

    assert!(error.contains("does not exist"), "{error}");
    assert!(!missing.exists());
}

#[tokio::test]
async fn export_of_missing_store_keeps_output_file() {
    if test_postgres_url().is_some() {
        eprintln!("SKIPPED: a PostgreSQL schema has no data folder to mistype");
        return;
    }
    let files = tempfile::tempdir().unwrap();
    let missing = files.path().join("mistyped");
    let output = write_file(files.path(), "rows.ndjson", "{\"id\":\"kept\"}\n");

    let error = fail("export", &missing, &[&output]);

    assert!(error.contains("does not exist"), "{error}");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "{\"id\":\"kept\"}\n");
}

#[tokio::test]
async fn existing_id_fails_import_by_default() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let first =
        write_file(files.path(), "first.ndjson", "{\"id\":\"a\",\"tenantDisplayName\":\"old\"}\n");
    let second = write_file(
        files.path(),
        "second.ndjson",
        "{\"id\":\"new\"}\n{\"id\":\"a\",\"tenantDisplayName\":\"new\"}\n",
    );
    succeed("import", folder.path(), &[&first]);

    let error = fail("import", folder.path(), &[&second]);

    assert!(error.contains("second.ndjson line 2"), "{error}");
    assert!(error.contains("the id 'a' already exists"), "{error}");
    let rows = export_rows(folder.path());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["tenantDisplayName"], "old");
}

#[tokio::test]
async fn repeated_id_in_input_fails_import() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let text = "{\"id\":\"x\"}\n{\"id\":\"y\"}\n{\"id\":\"x\"}\n";
    let input = write_file(files.path(), "rows.ndjson", text);

    let error = fail("import", folder.path(), &[&input]);

    assert!(error.contains("rows.ndjson line 3"), "{error}");
    assert!(error.contains("the id 'x' is already used by"), "{error}");
    assert!(error.contains("rows.ndjson line 1;"), "{error}");
    assert_eq!(export_rows(folder.path()).len(), 0);
}

#[tokio::test]
async fn existing_id_in_key_order_input_fails_import() {
    // Keys that ascend take the import's path without the staging index.
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let first = write_file(files.path(), "first.ndjson", "{\"id\":\"b\"}\n");
    let second = write_file(
        files.path(),
        "second.ndjson",
        "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n",
    );
    succeed("import", folder.path(), &[&first]);

    let error = fail("import", folder.path(), &[&second]);

    assert!(error.contains("second.ndjson line 2"), "{error}");
    assert!(error.contains("the id 'b' already exists"), "{error}");
    assert_eq!(export_rows(folder.path()).len(), 1);
}

#[tokio::test]
async fn repeated_id_after_many_ascending_rows_fails_import() {
    // The rows reach the store in batches of thousands, and the repeat comes in a later
    // batch than the first use, after keys that ascend.
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let mut given: Vec<Value> = (0..25_000).map(|i| json!({"id": format!("{i:06}")})).collect();
    given.push(json!({"id": "000007"}));
    let input = write_file(files.path(), "rows.ndjson", &ndjson(&given));

    let error = fail("import", folder.path(), &[&input]);

    assert!(error.contains("rows.ndjson line 25001"), "{error}");
    assert!(error.contains("the id '000007' is already used by"), "{error}");
    assert!(error.contains("rows.ndjson line 8;"), "{error}");
    assert_eq!(export_rows(folder.path()).len(), 0);
}

#[tokio::test]
async fn on_conflict_rules_apply_to_key_order_input() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let first = write_file(
        files.path(),
        "first.ndjson",
        "{\"id\":\"b\",\"tenantDisplayName\":\"old\"}\n{\"id\":\"d\",\"tenantDisplayName\":\"old\"}\n",
    );
    let text = "{\"id\":\"a\",\"tenantDisplayName\":\"new\"}\n\
                {\"id\":\"b\",\"tenantDisplayName\":\"new\"}\n\
                {\"id\":\"c\",\"tenantDisplayName\":\"new\"}\n";
    let second = write_file(files.path(), "second.ndjson", text);
    succeed("import", folder.path(), &[&first]);

    let skip = beacon("import", folder.path(), &["--on-conflict", "skip", &second]);
    let summary = String::from_utf8(skip.stderr).unwrap();
    assert!(summary.contains("read 3 rows: stored 2, skipped 1, rejected 0"), "{summary}");
    let names: Vec<Value> =
        export_rows(folder.path()).iter().map(|row| row["tenantDisplayName"].clone()).collect();
    assert_eq!(names, [json!("new"), json!("old"), json!("new"), json!("old")]);

    let replace = beacon("import", folder.path(), &["--on-conflict", "replace", &second]);
    let summary = String::from_utf8(replace.stderr).unwrap();
    assert!(summary.contains("read 3 rows: stored 3, skipped 0, rejected 0"), "{summary}");
    let names: Vec<Value> =
        export_rows(folder.path()).iter().map(|row| row["tenantDisplayName"].clone()).collect();
    assert_eq!(names, [json!("new"), json!("new"), json!("new"), json!("old")]);
}

#[tokio::test]
async fn on_conflict_skip_keeps_stored_and_first_rows() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let first =
        write_file(files.path(), "first.ndjson", "{\"id\":\"a\",\"tenantDisplayName\":\"old\"}\n");
    let text = "{\"id\":\"a\",\"tenantDisplayName\":\"new\"}\n\
                {\"id\":\"b\",\"tenantDisplayName\":\"first\"}\n\
                {\"id\":\"b\",\"tenantDisplayName\":\"second\"}\n";
    let second = write_file(files.path(), "second.ndjson", text);
    succeed("import", folder.path(), &[&first]);

    let output = beacon("import", folder.path(), &["--on-conflict", "skip", &second]);

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = String::from_utf8(output.stderr).unwrap();
    assert!(summary.contains("read 3 rows: stored 1, skipped 2, rejected 0"), "{summary}");
    let rows = export_rows(folder.path());
    assert_eq!(rows[0]["tenantDisplayName"], "old");
    assert_eq!(rows[1]["tenantDisplayName"], "first");
}

#[tokio::test]
async fn on_conflict_replace_keeps_last_rows() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let first = write_file(
        files.path(),
        "first.ndjson",
        "{\"id\":\"a\",\"tenantDisplayName\":\"old\",\"numberOfErrorDevices\":5}\n",
    );
    let text = "{\"id\":\"a\",\"tenantDisplayName\":\"new\"}\n\
                {\"id\":\"b\",\"tenantDisplayName\":\"first\"}\n\
                {\"id\":\"b\",\"tenantDisplayName\":\"second\"}\n";
    let second = write_file(files.path(), "second.ndjson", text);
    succeed("import", folder.path(), &[&first]);

    let output = beacon("import", folder.path(), &["--on-conflict", "replace", &second]);

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = String::from_utf8(output.stderr).unwrap();
    assert!(summary.contains("read 3 rows: stored 2, skipped 1, rejected 0"), "{summary}");
    let rows = export_rows(folder.path());
    assert_eq!(rows[0]["tenantDisplayName"], "new");
    // A replaced row takes every value of the new one, nulls included.
    assert_eq!(rows[0]["numberOfErrorDevices"], Value::Null);
    assert_eq!(rows[1]["tenantDisplayName"], "second");
}

/// Saves every page of a server's Graph listing, as a script pulling from Graph would.
async fn save_pages(server: &TestServer, dir: &Path) -> usize {
    let mut url = server.url(GRAPH);
    let mut pages = 0;
    loop {
        let page = get_page(server, &url, 2).await;
        pages += 1;
        std::fs::write(dir.join(format!("page-{pages:03}.json")), page.to_string()).unwrap();
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => return pages,
        }
    }
}

#[tokio::test]
async fn graph_pages_load_unchanged() {
    let server = TestServer::start().await;
    for row in hard_rows() {
        assert_eq!(server.create(GRAPH, &row).await.status(), 201);
    }
    let pages = tempfile::tempdir().unwrap();
    assert_eq!(save_pages(&server, pages.path()).await, 2);
    let first_page: Value =
        serde_json::from_str(&std::fs::read_to_string(pages.path().join("page-001.json")).unwrap())
            .unwrap();
    assert!(first_page["@odata.nextLink"].is_string());
    assert!(first_page["value"][0]["@odata.etag"].is_string());

    // A folder of pages, and one page on its own.
    let folder = DataFolder::new();
    succeed("import", folder.path(), &[pages.path().to_str().unwrap()]);
    let single = DataFolder::new();
    let page = pages.path().join("page-002.json");
    succeed("import", single.path(), &["--format", "json", page.to_str().unwrap()]);

    let served: Vec<Value> = server
        .list_all(GRAPH)
        .await
        .into_iter()
        .map(|mut row| {
            let object = row.as_object_mut().unwrap();
            object.retain(|name, _| !name.starts_with('@'));
            row
        })
        .collect();
    assert_eq!(export_rows(folder.path()), served);
    assert_eq!(export_rows(single.path()), served[2..]);
}

#[tokio::test]
async fn bad_graph_record_names_its_page_file() {
    let folder = DataFolder::new();
    let pages = tempfile::tempdir().unwrap();
    write_file(
        pages.path(),
        "1.json",
        r#"{"value":[{"id":"a"},{"id":"b"}],"@odata.nextLink":"x"}"#,
    );
    write_file(pages.path(), "2.json", r#"{"value":[{"id":"c"},{"id":"d","tenantId":7}]}"#);

    let error = fail("import", folder.path(), &[pages.path().to_str().unwrap()]);

    assert!(error.contains("2.json record 2"), "{error}");
    assert!(error.contains("property 'tenantId'"), "{error}");
    assert_eq!(export_rows(folder.path()).len(), 0);
}

#[tokio::test]
async fn import_and_export_leave_an_older_schema_alone() {
    // The upgrade concerns the SQLite file, which a PostgreSQL run does not use.
    if test_postgres_url().is_some() {
        return;
    }

    // A file at schema version 2, as a server of that version left it.
    let folder = DataFolder::new();
    std::fs::create_dir_all(folder.path()).unwrap();
    let path = folder.path().join("beacon.sqlite3");
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE schema_migrations (version INTEGER PRIMARY \
             KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT;",
        )
        .unwrap();
    connection
        .execute_batch(include_str!(
            "../../../store/migrations/sqlite/0001_create_aggregated_policy_compliance.sql"
        ))
        .unwrap();
    connection
        .execute_batch(include_str!(
            "../../../store/migrations/sqlite/0002_index_common_filters.sql"
        ))
        .unwrap();
    connection
        .execute_batch(
            "INSERT INTO schema_migrations VALUES (1, 'a', 'now'), (2, 'b', 'now'); \
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
    drop(connection);
    let before = std::fs::read(&path).unwrap();
    let files = tempfile::tempdir().unwrap();
    let input = write_file(files.path(), "rows.ndjson", "{\"id\":\"a\"}\n");

    let import_error = fail("import", folder.path(), &[&input]);
    let export_error = fail("export", folder.path(), &[]);

    for error in [import_error, export_error] {
        assert!(error.contains("has schema version 2, older than version 3"), "{error}");
        assert!(error.contains("beacon serve"), "{error}");
    }
    assert!(std::fs::read(&path).unwrap() == before, "the file changed");
}

#[tokio::test]
async fn pages_with_bom_or_int64_strings_load() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let text = "\u{FEFF}{\"value\":[{\"id\":\"a\",\"numberOfCompliantDevices\":\"9007199254740993\"},\
                {\"id\":\"b\",\"numberOfCompliantDevices\":7}]}";
    let input = write_file(files.path(), "page.json", text);

    succeed("import", folder.path(), &[&input]);

    let rows = export_rows(folder.path());
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["numberOfCompliantDevices"], json!(9_007_199_254_740_993_i64));
    assert_eq!(rows[1]["numberOfCompliantDevices"], json!(7));
}

#[tokio::test]
async fn page_that_is_not_an_object_is_named() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let cases = [
        ("array.json", "[1,2]", "it is an array"),
        ("text.json", "\"value\"", "it is a string"),
        ("second.json", "{\"value\":[{\"id\":\"a\"}]}\n{\"items\":[]}", "missing field `value`"),
    ];
    for (name, text, reason) in cases {
        let input = write_file(files.path(), name, text);

        let error = fail("import", folder.path(), &["--format", "json", &input]);

        let page = if name == "second.json" { 2 } else { 1 };
        let expected = format!("{name}: page {page} is not a Graph list response");
        assert!(error.contains(&expected), "{error}");
        assert!(error.contains(reason), "{error}");
    }
    assert_eq!(export_rows(folder.path()).len(), 0);
}

#[tokio::test]
async fn running_server_sees_imported_rows() {
    let server = TestServer::start().await;
    let response = server.create(GRAPH, &json!({"id": "before"})).await;
    assert_eq!(response.status(), 201);
    let rows: String = (0..500)
        .map(|i| format!("{{\"id\":\"imported-{i:03}\",\"numberOfErrorDevices\":{i}}}\n"))
        .collect();
    let files = tempfile::tempdir().unwrap();
    let input = write_file(files.path(), "rows.ndjson", &rows);

    // The server keeps taking writes while the import runs.
    let data_dir = server.data_dir.clone();
    let import = tokio::task::spawn_blocking(move || succeed("import", &data_dir, &[&input]));
    for i in 0..20 {
        let response = server.create(GRAPH, &json!({"id": format!("during-{i:02}")})).await;
        assert_eq!(response.status(), 201);
    }
    import.await.unwrap();

    let listed = server.list_all(GRAPH).await;
    assert_eq!(listed.len(), 521);
    let (status, row) = server.get_json(&format!("{GRAPH}/imported-499")).await;
    assert_eq!(status, 200);
    assert_eq!(row["numberOfErrorDevices"], 499);
    let count = server.request(Method::GET, &format!("{GRAPH}/$count")).send().await.unwrap();
    assert_eq!(count.text().await.unwrap(), "521");
}

#[tokio::test]
async fn bad_flags_give_clear_errors() {
    let folder = DataFolder::new();
    let files = tempfile::tempdir().unwrap();
    let input = write_file(files.path(), "rows.ndjson", "{\"id\":\"a\"}\n");
    let unknown = write_file(files.path(), "rows.csv", "id,colour\r\na,red\r\n");
    let path = files.path().to_str().unwrap().to_owned();

    for (command, args, expected) in [
        ("import", vec!["--tenant", "not-a-guid", &input], "--tenant 'not-a-guid' is not a GUID"),
        ("import", vec!["--format", "xml", &input], "invalid value 'xml' for '--format"),
        ("import", vec!["--on-conflict", "merge", &input], "invalid value 'merge'"),
        ("import", vec!["--view", "beta", &input], "invalid value 'beta' for '--view"),
        ("import", vec!["missing.ndjson"], "the input missing.ndjson does not exist"),
        ("import", vec!["--format", "csv", &path], "is a folder, which only --format json reads"),
        ("import", vec![&unknown], "The property 'colour' does not exist"),
        ("import", vec![], "required arguments were not provided"),
        ("export", vec!["--filter", "colour eq 'red'"], "--filter is invalid"),
        ("export", vec!["--format", "json"], "invalid value 'json' for '--format"),
    ] {
        let error = fail(command, folder.path(), &args);
        assert!(error.contains(expected), "{command} {args:?}: {error}");
    }
}
