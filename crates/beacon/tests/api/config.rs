//! The settings file, `BEACON_*` variables and flags in their order of precedence, the
//! messages for unknown keys and invalid values from each source, and `beacon config`.

use std::path::Path;
use std::process::Output;

use crate::helpers::{DataFolder, TestServer, beacon_command};

/// Runs `beacon` with `args` and the environment variables `env`, and no other `BEACON_*`
/// variables.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = beacon_command();
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// Writes `text` as the data folder's `beacon.toml`, creating the folder.
fn write_settings(data_dir: &Path, text: &str) {
    std::fs::create_dir_all(data_dir).unwrap();
    std::fs::write(data_dir.join("beacon.toml"), text).unwrap();
}

/// Runs `beacon config` on `data_dir` and returns its output, which must succeed.
fn config(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["config", "--data-dir", data_dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = run(&all, env);
    assert!(output.status.success(), "beacon config failed: {}", stderr(&output));
    String::from_utf8(output.stdout).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Returns the value and the source comment of `key` in `beacon config`'s output; the value
/// is `None` for an option that is not set.
fn setting(output: &str, key: &str) -> (Option<String>, String) {
    for line in output.lines() {
        let (entry, source) = match line.split_once("  # ") {
            Some((entry, source)) => (entry.trim_end(), source.to_owned()),
            None => (line, String::new()),
        };
        if entry == format!("# {key} is not set") {
            return (None, source);
        }
        if let Some(value) = entry.strip_prefix(&format!("{key} = ")) {
            return (Some(value.to_owned()), source);
        }
    }
    panic!("no line for {key} in:\n{output}")
}

/// Returns the value of `key` and its source, for an option that is set.
fn value(output: &str, key: &str) -> (String, String) {
    match setting(output, key) {
        (Some(value), source) => (value, source),
        (None, _) => panic!("{key} is not set in:\n{output}"),
    }
}

/// Asserts that `beacon serve` with these arguments and variables stops before serving, with
/// a message that contains every one of `expected`.
fn assert_start_fails(args: &[&str], env: &[(&str, &str)], expected: &[&str]) {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let output = run(&all, env);
    assert_eq!(output.status.code(), Some(2), "exit status; stderr: {}", stderr(&output));
    let message = stderr(&output);
    for part in expected {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

#[test]
fn sources_apply_in_precedence_order() {
    let folder = DataFolder::new();
    let dir = folder.path().to_str().unwrap();
    write_settings(
        folder.path(),
        "# limits for the staging server\n\
         listen = \"127.0.0.1:9400\"\n\
         rate-limit = 20\n\
         db-readers = 2\n\
         max-headers = 64\n\
         issuer = [\"https://a.example\", \"https://b.example\"]\n\
         auth = \"jwks\"\n\
         jwks-file = \"/etc/beacon/jwks.json\"\n\
         audience = \"api://beacon\"\n",
    );

    let output = config(
        folder.path(),
        &["--db-readers", "3"],
        &[("BEACON_RATE_LIMIT", "30"), ("BEACON_DB_READERS", "5")],
    );

    let file = format!("{dir}/beacon.toml");
    assert!(output.starts_with(&format!("# settings file: {file}\n")), "{output}");
    assert_eq!(value(&output, "listen"), ("\"127.0.0.1:9400\"".into(), format!("{file}, line 2")));
    assert_eq!(
        value(&output, "rate-limit"),
        ("30".into(), format!("environment variable BEACON_RATE_LIMIT, overrides {file}, line 3"))
    );
    assert_eq!(
        value(&output, "db-readers"),
        ("3".into(), format!("command line, overrides {file}, line 4"))
    );
    assert_eq!(value(&output, "max-headers"), ("64".into(), format!("{file}, line 5")));
    assert_eq!(value(&output, "issuer").0, "[\"https://a.example\", \"https://b.example\"]");
    assert_eq!(value(&output, "rate-burst"), ("100".into(), "default".into()));
    assert_eq!(setting(&output, "public-url"), (None, String::new()));
    assert_eq!(value(&output, "database"), (format!("\"{dir}/beacon.sqlite3\""), "default".into()));
}

#[test]
fn config_option_names_the_file() {
    let folder = DataFolder::new();
    let elsewhere = folder.path().with_file_name("staging.toml");
    let data_dir = folder.path().with_file_name("from-file");
    std::fs::write(
        &elsewhere,
        format!("data-dir = \"{}\"\nclock-skew = \"2m\"\n", data_dir.display()),
    )
    .unwrap();
    let path = elsewhere.to_str().unwrap();

    let output = run(&["config", "--config", path], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        value(&output, "data-dir"),
        (format!("\"{}\"", data_dir.display()), format!("{path}, line 1"))
    );
    assert_eq!(value(&output, "clock-skew").0, "\"2m\"");

    // The same through BEACON_CONFIG; a named file that is missing stops the start.
    let output = run(&["config"], &[("BEACON_CONFIG", path)]);
    assert_eq!(value(&String::from_utf8(output.stdout).unwrap(), "clock-skew").0, "\"2m\"");
    let missing = folder.path().with_file_name("missing.toml");
    assert_start_fails(
        &["--config", missing.to_str().unwrap()],
        &[],
        &["cannot read the settings file", "missing.toml"],
    );
}

#[test]
fn data_folder_file_cannot_move_the_data_folder() {
    let folder = DataFolder::new();
    write_settings(folder.path(), "data-dir = \"/elsewhere\"\n");
    assert_start_fails(
        &["--data-dir", folder.path().to_str().unwrap()],
        &[],
        &["beacon.toml, line 1", "key \"data-dir\" cannot be set", "--config"],
    );
}

#[test]
fn unknown_keys_stop_the_start() {
    let folder = DataFolder::new();
    let dir = folder.path().to_str().unwrap();
    for (text, expected) in [
        (
            "listen = \"127.0.0.1:0\"\nrate_limit = 5\n",
            [
                "line 2",
                "unknown key \"rate_limit\". Did you mean \"rate-limit\"?",
                "shutdown-timeout, log-format.",
            ],
        ),
        (
            "[server]\nlisten = \"127.0.0.1:0\"\n",
            ["line 1", "unknown key \"server\". The keys are", "metrics-listen"],
        ),
        ("config = \"other.toml\"\n", ["line 1", "unknown key \"config\"", "rate-burst"]),
    ] {
        write_settings(folder.path(), text);
        assert_start_fails(&["--data-dir", dir], &[], &expected);
    }
}

#[test]
fn unknown_key_message_leaves_out_hidden_options() {
    let folder = DataFolder::new();
    write_settings(folder.path(), "rate_limit = 5\n");

    let output = run(&["serve", "--data-dir", folder.path().to_str().unwrap()], &[]);

    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("rate-limit"), "{message}");
    assert!(!message.contains("sqlite-max-page-count"), "{message}");
}

#[test]
fn invalid_file_values_name_key_and_allowed() {
    let folder = DataFolder::new();
    let dir = folder.path().to_str().unwrap();
    let cases: [(&str, &[&str]); 9] = [
        (
            "rate-limit = \"abc\"",
            &["line 1: key \"rate-limit\": invalid value \"abc\"", "is not a rate from"],
        ),
        (
            "db-readers = 0",
            &[
                "key \"db-readers\": invalid value \"0\": the number is out of range",
                "from 1 to 64",
            ],
        ),
        ("rate-burst = 1.5", &["key \"rate-burst\": invalid value \"1.5\": not a whole number"]),
        (
            "log-format = \"xml\"",
            &["key \"log-format\": invalid value \"xml\" (allowed: one of text, json)"],
        ),
        (
            "listen = \"localhost\"",
            &["key \"listen\": invalid value \"localhost\"", "such as 127.0.0.1:8080"],
        ),
        ("request-timeout = \"soon\"", &["key \"request-timeout\": invalid value \"soon\""]),
        (
            "rate-limit = true",
            &["key \"rate-limit\": expected a string or a number, found a boolean"],
        ),
        (
            "listen = [\"127.0.0.1:1\", \"127.0.0.1:2\"]",
            &["key \"listen\": expected one value, found an array of 2"],
        ),
        ("listen = ", &["beacon.toml: invalid TOML", "line 1"]),
    ];
    for (text, expected) in cases {
        write_settings(folder.path(), &format!("{text}\n"));
        let mut expected = expected.to_vec();
        expected.push("beacon.toml");
        assert_start_fails(&["--data-dir", dir], &[], &expected);
    }
}

#[test]
fn invalid_environment_values_name_variable() {
    let folder = DataFolder::new();
    let dir = folder.path().to_str().unwrap();
    assert_start_fails(
        &["--data-dir", dir],
        &[("BEACON_RATE_LIMIT", "abc")],
        &[
            "environment variable BEACON_RATE_LIMIT: key \"rate-limit\": invalid value \"abc\"",
            "is not a rate from",
        ],
    );
    assert_start_fails(
        &["--data-dir", dir],
        &[("BEACON_LOG_FORMAT", "xml")],
        &["environment variable BEACON_LOG_FORMAT", "(allowed: one of text, json)"],
    );
    assert_start_fails(
        &["--data-dir", dir],
        &[("BEACON_MAX_HEADERS", "5")],
        &[
            "environment variable BEACON_MAX_HEADERS",
            "the number is out of range",
            "from 16 to 1000",
        ],
    );

    // A flag that overrides the variable makes the variable's value irrelevant.
    let output = config(folder.path(), &["--rate-limit", "5"], &[("BEACON_RATE_LIMIT", "abc")]);
    assert_eq!(value(&output, "rate-limit"), ("5".into(), "command line".into()));
}

#[test]
fn invalid_flag_values_name_the_flag() {
    assert_start_fails(
        &["--rate-limit", "abc"],
        &[],
        &["invalid value 'abc' for '--rate-limit <PER_SECOND>'", "is not a rate from"],
    );
    assert_start_fails(
        &["--db-readers", "99"],
        &[],
        &["'--db-readers <N>'", "99 is not in 1..=64"],
    );
}

#[test]
fn config_output_redacts_passwords() {
    let folder = DataFolder::new();
    let dir = folder.path().display();
    write_settings(
        folder.path(),
        "database = \"postgres://beacon:file-secret@db.example:5432/beacon?sslmode=require\"\n\
         auth = \"jwks\"\n\
         jwks-url = \"https://keys.example/jwks.json\"\n\
         issuer = \"https://issuer.example\"\n\
         audience = \"api://beacon\"\n",
    );
    let output = config(folder.path(), &[], &[]);
    assert!(!output.contains("file-secret"), "{output}");
    assert_eq!(
        value(&output, "database").0,
        "\"postgres://beacon:REDACTED@db.example:5432/beacon?sslmode=require\""
    );
    assert_eq!(value(&output, "jwks-url").0, "\"https://keys.example/jwks.json\"");

    let output = config(
        folder.path(),
        &[],
        &[("BEACON_DATABASE_URL", "postgres://db.example/beacon?user=b&password=env-secret")],
    );
    assert!(!output.contains("env-secret"), "{output}");
    assert_eq!(
        value(&output, "database"),
        (
            "\"postgres://db.example/beacon?user=b&password=REDACTED\"".into(),
            format!(
                "environment variable BEACON_DATABASE_URL, overrides {dir}/beacon.toml, line 1"
            )
        )
    );

    // libpq's keyword/value form, which serve rejects, stops config too, naming where it was
    // set and showing no password.
    let output = run(
        &["config", "--data-dir", folder.path().to_str().unwrap()],
        &[("BEACON_DATABASE_URL", "host=db.example user=b password='kv secret' dbname=beacon")],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("--database takes a URL"), "{message}");
    assert!(message.contains("environment variable BEACON_DATABASE_URL"), "{message}");
    assert!(!message.contains("kv secret"), "{message}");
    assert!(output.stdout.is_empty());
}

#[test]
fn config_output_shows_the_jwks_refetch_default() {
    let folder = DataFolder::new();
    write_settings(
        folder.path(),
        "auth = \"jwks\"\n\
         jwks-url = \"https://keys.example/jwks.json\"\n\
         issuer = \"https://issuer.example\"\n\
         audience = \"api://beacon\"\n",
    );
    let output = config(folder.path(), &[], &[]);
    assert_eq!(value(&output, "jwks-min-refetch"), ("\"30s\"".into(), "default".into()));

    // Dev mode rejects the option, so its output leaves it unset.
    let dev = DataFolder::new();
    let output = config(dev.path(), &[], &[]);
    assert!(output.contains("# jwks-min-refetch is not set"), "{output}");
}

#[test]
fn token_uses_the_settings_file_key() {
    // A key file named in the data folder's settings is the one `token` signs with.
    let folder = DataFolder::new();
    let key = folder.path().with_file_name("shared-key.pem");
    write_settings(folder.path(), &format!("signing-key-file = \"{}\"\n", key.display()));
    let output = run(&["token", "--data-dir", folder.path().to_str().unwrap()], &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("shared-key.pem does not exist"), "{}", stderr(&output));
}

#[tokio::test]
async fn serve_applies_the_settings_file() {
    let folder = DataFolder::new();
    write_settings(folder.path(), "max-url-bytes = 1024\n");
    let server = TestServer::start_in(folder.path()).await;

    let long = format!("aggregatedPolicyCompliances?$filter=id eq '{}'", "x".repeat(1100));
    let response = server.request(reqwest::Method::GET, &long).send().await.unwrap();
    assert_eq!(response.status(), 414);
    let short = server.request(reqwest::Method::GET, "aggregatedPolicyCompliances").send().await;
    assert_eq!(short.unwrap().status(), 200);
}

#[test]
fn file_completes_options_from_environment() {
    // jwks mode from the environment needs the key source, issuer and audience from the file.
    let folder = DataFolder::new();
    write_settings(
        folder.path(),
        "jwks-file = \"/etc/beacon/jwks.json\"\n\
         issuer = \"https://issuer.example\"\n\
         audience = \"api://beacon\"\n",
    );
    let output = config(folder.path(), &[], &[("BEACON_AUTH", "jwks")]);
    assert_eq!(
        value(&output, "auth"),
        ("\"jwks\"".into(), "environment variable BEACON_AUTH".into())
    );
    assert_eq!(value(&output, "issuer").0, "\"https://issuer.example\"");

    // Without the file, the same start stops and names what is missing.
    std::fs::remove_file(folder.path().join("beacon.toml")).unwrap();
    let dir = folder.path().to_str().unwrap();
    let output = run(&["config", "--data-dir", dir], &[("BEACON_AUTH", "jwks")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--issuer"), "{}", stderr(&output));
}

#[test]
fn dev_mode_error_names_option_source() {
    let folder = DataFolder::new();
    write_settings(
        folder.path(),
        "listen = \"127.0.0.1:0\"\nissuer = \"https://issuer.example\"\n",
    );
    let dir = folder.path().display();

    let output = run(&["serve", "--data-dir", folder.path().to_str().unwrap()], &[]);

    assert!(!output.status.success());
    let message = stderr(&output);
    let expected =
        format!("--issuer (from {dir}/beacon.toml, line 2) applies only with --auth jwks");
    assert!(message.contains(&expected), "{message}");

    // With one from the command line too, each names its source.
    let output = run(
        &["serve", "--data-dir", folder.path().to_str().unwrap(), "--audience", "api://beacon"],
        &[],
    );
    let message = stderr(&output);
    let expected = format!(
        "--issuer (from {dir}/beacon.toml, line 2), --audience (from command line) apply only"
    );
    assert!(message.contains(&expected), "{message}");
}
