//! The settings model: every option of `beacon serve` from defaults, a TOML file, `BEACON_*`
//! environment variables and the command line, in rising precedence.
//!
//! clap reads the command line, the environment and the defaults, and records which of them
//! gave each value. This module adds the file below the environment. It reads `--config PATH`
//! (or `BEACON_CONFIG`), else `beacon.toml` in the data folder when that file exists, and
//! checks every key and value. Then it passes each value that neither the command line nor the
//! environment gives to clap as if it had been typed. So a value from the file goes through the
//! same parser as the flag, and the parsed arguments are the ones clap builds.
//!
//! The file's keys are the long names of `beacon serve`'s options without the dashes in front,
//! such as `listen`, `metrics-listen` and `rate-limit`. A value is a string, a number, or an
//! array of them for the repeatable options (`issuer`, `audience`). Subcommands that share an
//! option with `serve` (`token`, `backup`, `restore`) take its value from the file too, and
//! ignore the others. `beacon config` prints the result with the source of each value, see
//! [`Settings::render`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command, CommandFactory, FromArgMatches};

/// The name of the settings file that is read from the data folder when `--config` is absent.
pub const FILE_NAME: &str = "beacon.toml";

/// The subcommand whose options are the file's keys.
const SETTINGS_COMMAND: &str = "serve";

/// The argument id of `--config`; only subcommands that have it read a file.
const CONFIG_ARG: &str = "config";

/// The argument id of `--data-dir`, the folder whose `beacon.toml` is read.
const DATA_DIR_ARG: &str = "data_dir";

/// The origin of a setting's value, from lowest to highest precedence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The option's default.
    Default,
    /// The settings file, at this line.
    File {
        /// The file.
        path: PathBuf,
        /// The line of the key, from 1.
        line: usize,
    },
    /// An environment variable of this name.
    Environment(String),
    /// The command line.
    CommandLine,
}

/// One option's effective value and its source.
#[derive(Clone, Debug)]
pub struct Setting {
    /// The option's long name, which is also its key in the file.
    pub key: String,
    /// The values as given, before parsing; empty when the option is not set.
    pub values: Vec<String>,
    /// The origin of the values; `None` when the option is not set.
    pub source: Option<Source>,
    /// The file's line that a higher source overrode, if any.
    pub overridden: Option<Source>,
}

/// The effective settings of the subcommand that runs.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The settings file that was read, if any.
    pub file: Option<PathBuf>,
    /// The file that would have been read from the data folder had it existed.
    pub absent_file: Option<PathBuf>,
    /// Every option of the subcommand, in the order of its help.
    pub settings: Vec<Setting>,
}

/// Parses the process's arguments into `C`, with the values of the settings file added below
/// the environment.
///
/// Exits the process, as clap does, for help, version and usage errors on the command line.
/// Returns an error that names the file, the line and the key for a file that is missing,
/// is not TOML, has an unknown key or an invalid value, and names the variable for an invalid
/// environment variable.
pub fn parse<C: CommandFactory + FromArgMatches>() -> anyhow::Result<(C, Settings)> {
    parse_from::<C>(std::env::args_os().collect())
}

/// Parses `args` (the program name first) as [`parse`] does.
pub fn parse_from<C: CommandFactory + FromArgMatches>(
    args: Vec<OsString>,
) -> anyhow::Result<(C, Settings)> {
    // A built command lists the groups that its arguments name, and its help options.
    let mut command = C::command();
    command.build();
    let matches = match command.clone().try_get_matches_from(&args) {
        Ok(matches) => matches,
        // The file may give what is missing, such as the issuers that BEACON_AUTH=jwks needs,
        // and the final parse below checks again.
        Err(error) if error.kind() == ErrorKind::MissingRequiredArgument => command
            .clone()
            .ignore_errors(true)
            .try_get_matches_from(&args)
            .map_err(|error| explain_environment_error(&command, &args, error))?,
        Err(error) => return Err(explain_environment_error(&command, &args, error)),
    };
    // Without a settings file to fill in what is missing, clap's own checks decide, so a
    // missing argument gets clap's message and usage rather than a bare field name.
    let without_file = |command: &Command| -> anyhow::Result<(C, Settings)> {
        let strict = command
            .clone()
            .try_get_matches_from(&args)
            .map_err(|error| explain_environment_error(command, &args, error))?;
        Ok((C::from_arg_matches(&strict)?, Settings::default()))
    };
    let Some((name, sub_matches)) = matches.subcommand() else {
        return without_file(&command);
    };
    let subcommand = command.find_subcommand(name).expect("clap matched this subcommand");
    if !subcommand.get_arguments().any(|arg| arg.get_id() == CONFIG_ARG) {
        return without_file(&command);
    }
    let settings_command =
        command.find_subcommand(SETTINGS_COMMAND).expect("the settings subcommand exists");

    // The file given by name must exist; the data folder's is optional.
    let mut settings = Settings::default();
    let explicit = sub_matches.get_one::<PathBuf>(CONFIG_ARG).cloned();
    let is_explicit = explicit.is_some();
    let file = explicit
        .or_else(|| sub_matches.get_one::<PathBuf>(DATA_DIR_ARG).map(|dir| dir.join(FILE_NAME)));
    let from_file = match file {
        Some(path) if is_explicit || path.exists() => {
            let values = read_file(&path, settings_command, subcommand, sub_matches, is_explicit)?;
            settings.file = Some(path);
            values
        }
        Some(path) => {
            settings.absent_file = Some(path);
            FileValues::default()
        }
        None => FileValues::default(),
    };

    // Let clap parse the file's values as options given right after the subcommand's name,
    // so they pass through the same parsers and checks as the command line.
    let position = args.iter().position(|arg| arg == name).map_or(args.len(), |at| at + 1);
    let mut layered = args.clone();
    layered.splice(position..position, from_file.arguments.iter().map(OsString::from));
    let final_matches = command
        .clone()
        .try_get_matches_from(&layered)
        .map_err(|error| explain_environment_error(&command, &layered, error))?;
    let parsed = C::from_arg_matches(&final_matches)?;
    let (_, final_sub) = final_matches.subcommand().expect("the same subcommand matched");

    for arg in subcommand.get_arguments().filter(|arg| is_setting(arg)) {
        let Some(key) = arg.get_long() else { continue };
        let id = arg.get_id().as_str();
        let values: Vec<String> = final_sub
            .get_raw(id)
            .map(|raw| raw.map(|value| value.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let file_source = from_file.sources.get(key).cloned();
        let source = match final_sub.value_source(id) {
            None => None,
            Some(_) if from_file.applied.contains_key(key) => file_source.clone(),
            Some(ValueSource::CommandLine) => Some(Source::CommandLine),
            Some(ValueSource::EnvVariable) => Some(Source::Environment(
                arg.get_env().map(|env| env.to_string_lossy().into_owned()).unwrap_or_default(),
            )),
            Some(_) => Some(Source::Default),
        };
        let overridden = if from_file.applied.contains_key(key) { None } else { file_source };
        settings.settings.push(Setting { key: key.to_owned(), values, source, overridden });
    }
    Ok((parsed, settings))
}

/// The values the settings file contributes.
#[derive(Debug, Default)]
struct FileValues {
    /// `--key=value` arguments for the options that no higher source gives.
    arguments: Vec<String>,
    /// The keys applied, each with its line.
    applied: BTreeMap<String, usize>,
    /// The line of every key of the file that this subcommand takes.
    sources: BTreeMap<String, Source>,
}

/// Reads and checks the settings file at `path`, and returns the arguments it adds.
///
/// Every key must be an option of `settings_command`. A key that `subcommand` also has is
/// applied unless `matches` shows that the command line or the environment gives it, or gives
/// another member of its group.
fn read_file(
    path: &Path,
    settings_command: &Command,
    subcommand: &Command,
    matches: &ArgMatches,
    explicit: bool,
) -> anyhow::Result<FileValues> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the settings file {}", path.display()))?;
    let document = toml_edit::Document::parse(text.as_str())
        .map_err(|error| anyhow::anyhow!("{}: invalid TOML: {error}", path.display()))?;
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map_or(1, |span| text[..span.start].matches('\n').count() + 1)
    };

    let mut values = FileValues::default();
    for (key, item) in document.as_table().iter() {
        let line = document.as_table().key(key).map_or(1, |key| line_of(key.span()));
        let at = format!("{}, line {line}", path.display());
        let Some(known) = settings_command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(key) && is_setting(arg))
        else {
            bail!("{at}: unknown key \"{key}\".{}", suggest(key, settings_command));
        };
        if known.get_id() == DATA_DIR_ARG && !explicit {
            bail!(
                "{at}: key \"data-dir\" cannot be set in the data folder's own {FILE_NAME}; \
                 give the file with --config, or set the folder with --data-dir or \
                 BEACON_DATA_DIR"
            );
        }
        let given = toml_values(item).map_err(|found| {
            anyhow::anyhow!("{at}: key \"{key}\": expected a string or a number, found {found}")
        })?;
        let repeatable = known.get_value_delimiter().is_some();
        if given.len() != 1 && !repeatable {
            bail!("{at}: key \"{key}\": expected one value, found an array of {}", given.len());
        }
        let given: Vec<String> = match known.get_value_delimiter() {
            Some(delimiter) => given
                .iter()
                .flat_map(|value| value.split(delimiter).map(str::to_owned).collect::<Vec<_>>())
                .collect(),
            None => given,
        };
        for value in &given {
            check_value(known, value)
                .map_err(|reason| anyhow::anyhow!("{at}: key \"{key}\": {reason}"))?;
        }

        // Apply the value unless this subcommand lacks the option or a higher source sets it.
        let Some(arg) = subcommand.get_arguments().find(|arg| arg.get_long() == Some(key)) else {
            continue;
        };
        values.sources.insert(key.to_owned(), Source::File { path: path.to_owned(), line });
        if is_given_higher(matches, arg.get_id().as_str())
            || subcommand.get_groups().any(|group| {
                // Only groups whose members exclude each other matter; clap also makes a group
                // of every flattened struct, which allows all of its members at once.
                let exclusive = !group.clone().is_multiple();
                let members: Vec<_> = group.get_args().collect();
                exclusive
                    && members.contains(&arg.get_id())
                    && members.iter().any(|member| is_given_higher(matches, member.as_str()))
            })
        {
            continue;
        }
        values.applied.insert(key.to_owned(), line);
        values.arguments.extend(given.iter().map(|value| format!("--{key}={value}")));
    }
    Ok(values)
}

/// Returns whether `arg` is an option that takes a value: not a positional argument, not
/// `--help` and not `--config`, which chooses the file.
fn is_setting(arg: &Arg) -> bool {
    !arg.is_positional()
        && arg.get_id() != CONFIG_ARG
        && matches!(arg.get_action(), clap::ArgAction::Set | clap::ArgAction::Append)
}

/// Returns whether the command line or the environment gives the argument `id`.
fn is_given_higher(matches: &ArgMatches, id: &str) -> bool {
    matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
}

/// Returns the values of a TOML item as text, or the kind of item that is not a value.
fn toml_values(item: &toml_edit::Item) -> Result<Vec<String>, &'static str> {
    let scalar = |value: &toml_edit::Value| match value {
        toml_edit::Value::String(text) => Ok(text.value().clone()),
        toml_edit::Value::Integer(number) => Ok(number.value().to_string()),
        toml_edit::Value::Float(number) => Ok(number.value().to_string()),
        toml_edit::Value::Boolean(_) => Err("a boolean"),
        toml_edit::Value::Datetime(_) => Err("a date-time"),
        toml_edit::Value::Array(_) => Err("a nested array"),
        toml_edit::Value::InlineTable(_) => Err("a table"),
    };
    match item {
        toml_edit::Item::Value(toml_edit::Value::Array(array)) => {
            array.iter().map(scalar).collect()
        }
        toml_edit::Item::Value(value) => scalar(value).map(|text| vec![text]),
        toml_edit::Item::Table(_) => Err("a table"),
        toml_edit::Item::ArrayOfTables(_) => Err("an array of tables"),
        toml_edit::Item::None => Err("nothing"),
    }
}

/// Parses `value` with the parser of `arg`, as clap does for the flag, and returns the reason
/// and what is allowed when it fails.
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    // The probe's option has a fixed name, since only the parser matters.
    let probe = Command::new("check").arg(
        Arg::new("value")
            .long("value")
            .value_parser(arg.get_value_parser().clone())
            .action(clap::ArgAction::Append),
    );
    match probe.try_get_matches_from(["check".to_owned(), format!("--value={value}")]) {
        Ok(_) => Ok(()),
        Err(error) => Err(describe_invalid(arg, value, &error)),
    }
}

/// Writes `invalid value "V": REASON (allowed: …)` for a value that the parser of `arg`
/// rejected with `error`.
fn describe_invalid(arg: &Arg, value: &str, error: &clap::Error) -> String {
    let reason = match std::error::Error::source(error) {
        Some(source) => plain_reason(source, value),
        None if value.is_empty() => "the value is empty".to_owned(),
        None => "not a valid value".to_owned(),
    };
    let possible: Vec<String> =
        arg.get_possible_values().iter().map(|value| value.get_name().to_owned()).collect();
    let allowed = if possible.is_empty() {
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        // The first sentence of the help describes the option's value, often with its range.
        let first = help.split(". ").next().unwrap_or_default().trim().trim_end_matches('.');
        first.replace('\n', " ")
    } else {
        format!("one of {}", possible.join(", "))
    };
    if possible.is_empty() {
        format!("invalid value \"{value}\": {reason} (allowed: {allowed})")
    } else {
        format!("invalid value \"{value}\" (allowed: {allowed})")
    }
}

/// Words a parser's error in plain terms where its own message names the parser's internals,
/// such as Rust's "invalid digit found in string" or clap's "5 is not in 1..=4294967295".
fn plain_reason(source: &(dyn std::error::Error + 'static), value: &str) -> String {
    use std::num::IntErrorKind;

    if let Some(error) = source.downcast_ref::<std::num::ParseIntError>() {
        let reason = match error.kind() {
            IntErrorKind::Empty => "the value is empty",
            IntErrorKind::InvalidDigit => "not a whole number",
            IntErrorKind::PosOverflow => "the number is too large",
            IntErrorKind::NegOverflow => "the number is too small",
            IntErrorKind::Zero => "zero is not allowed",
            _ => "not a valid number",
        };
        return reason.to_owned();
    }
    let text = source.to_string();
    if text.starts_with(&format!("{value} is not in ")) && text.contains("..") {
        return "the number is out of range".to_owned();
    }
    text
}

/// Rewrites clap's error for an invalid value from an environment variable so that it names
/// the variable, because clap's names only the flag. Every other error exits as clap does.
fn explain_environment_error(
    command: &Command,
    args: &[OsString],
    error: clap::Error,
) -> anyhow::Error {
    if !matches!(error.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        error.exit();
    }
    let invalid_arg = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(text)) => text.clone(),
        _ => error.exit(),
    };
    let long = invalid_arg.trim_start_matches('-').split([' ', '=']).next().unwrap_or_default();
    let on_command_line = args.iter().any(|arg| {
        let arg = arg.to_string_lossy();
        arg == format!("--{long}") || arg.starts_with(&format!("--{long}="))
    });
    let from_environment = command
        .get_subcommands()
        .flat_map(Command::get_arguments)
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| Some((arg, arg.get_env()?.to_string_lossy().into_owned())));
    match from_environment {
        Some((arg, variable)) if !on_command_line => {
            let value = std::env::var(&variable).unwrap_or_default();
            // The variable may hold several values; name the first one that fails.
            let values: Vec<&str> = match arg.get_value_delimiter() {
                Some(delimiter) => value.split(delimiter).collect(),
                None => vec![value.as_str()],
            };
            let reason = values
                .iter()
                .find_map(|value| check_value(arg, value).err())
                .unwrap_or_else(|| describe_invalid(arg, &value, &error));
            anyhow::anyhow!("environment variable {variable}: key \"{long}\": {reason}")
        }
        _ => error.exit(),
    }
}

/// Suggests the known key that an unknown one was probably meant to be, and lists the keys.
fn suggest(key: &str, settings_command: &Command) -> String {
    let keys: Vec<&str> = settings_command
        .get_arguments()
        .filter(|arg| is_setting(arg) && !arg.is_hide_set())
        .filter_map(Arg::get_long)
        .collect();
    let normalized = key.to_ascii_lowercase().replace('_', "-");
    let normalized = normalized.strip_prefix("--").unwrap_or(&normalized);
    let hint = match keys.iter().find(|known| **known == normalized) {
        Some(known) => format!(" Did you mean \"{known}\"?"),
        None => String::new(),
    };
    format!("{hint} The keys are the long names of beacon serve's options: {}.", keys.join(", "))
}

impl Settings {
    /// Describes where the value of the option `key` (its long name) came from, such as
    /// "beacon.toml, line 3"; `None` for an option that is not set.
    pub fn source_of(&self, key: &str) -> Option<String> {
        let setting = self.settings.iter().find(|setting| setting.key == key)?;
        setting.source.as_ref().map(describe_source)
    }

    /// Writes the settings as TOML that `--config` accepts, one key a line with its source as
    /// a comment. Options that are not set are commented out, and passwords in URLs are
    /// replaced by `REDACTED`, so a file made from the output needs its passwords put back.
    pub fn render(&self, derived_defaults: &[(&str, String)]) -> String {
        let mut out = String::new();
        match (&self.file, &self.absent_file) {
            (Some(file), _) => {
                let _ = writeln!(out, "# settings file: {}", file.display());
            }
            (None, Some(absent)) => {
                let _ =
                    writeln!(out, "# settings file: none ({} does not exist)", absent.display());
            }
            (None, None) => out.push_str("# settings file: none\n"),
        }
        let mut lines = Vec::with_capacity(self.settings.len());
        for setting in &self.settings {
            let derived = derived_defaults.iter().find(|(key, _)| *key == setting.key);
            let (line, mut comment) = match (&setting.source, derived) {
                (Some(source), _) => (
                    format!("{} = {}", setting.key, value_text(&setting.values)),
                    describe_source(source),
                ),
                (None, Some((_, value))) => (
                    format!("{} = {}", setting.key, value_text(std::slice::from_ref(value))),
                    "default".to_owned(),
                ),
                (None, None) => (format!("# {} is not set", setting.key), String::new()),
            };
            match (&setting.overridden, comment.is_empty()) {
                (Some(overridden), false) => {
                    let _ = write!(comment, ", overrides {}", describe_source(overridden));
                }
                (Some(overridden), true) => {
                    comment = format!(
                        "{} is ignored, because an option that excludes it is given",
                        describe_source(overridden)
                    );
                }
                (None, _) => {}
            }
            lines.push((line, comment));
        }
        let width = lines.iter().map(|(line, _)| line.len()).max().unwrap_or(0);
        for (line, comment) in lines {
            if comment.is_empty() {
                let _ = writeln!(out, "{line}");
            } else {
                let _ = writeln!(out, "{line:width$}  # {comment}");
            }
        }
        out
    }
}

fn describe_source(source: &Source) -> String {
    match source {
        Source::Default => "default".to_owned(),
        Source::File { path, line } => format!("{}, line {line}", path.display()),
        Source::Environment(variable) => format!("environment variable {variable}"),
        Source::CommandLine => "command line".to_owned(),
    }
}

/// Writes values as TOML, a number as a number and anything else as a string, or an array for
/// several, with passwords redacted.
fn value_text(values: &[String]) -> String {
    let is_number = |value: &str| {
        let digits = value.strip_prefix('-').unwrap_or(value);
        let mut parts = digits.splitn(2, '.');
        parts.all(|part| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()))
    };
    let quoted: Vec<String> = values
        .iter()
        .map(|value| if is_number(value) { value.clone() } else { quote(&redact(value)) })
        .collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", quoted.join(", ")),
    }
}

/// Writes a TOML basic string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Replaces the password of a URL, in its user information (`scheme://user:password@host`)
/// or in a `password` or `sslpassword` query parameter, or of a PostgreSQL keyword/value
/// connection string (`host=db password=secret`), with `REDACTED`.
pub fn redact(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return redact_keyword_value(value);
    };
    let mut text = value.to_owned();

    // The PostgreSQL driver reads the user information up to the first `@`, even past an
    // unencoded `/`, `?` or `#` in the password. A password or a user name may also contain
    // `@`, so the user information here ends at the last `@` before the query, which keeps
    // every reading of an ambiguous URL's password hidden.
    let rest_start = scheme_end + 3;
    if let Some(first_at) = text[rest_start..].find('@').map(|at| rest_start + at) {
        let query = text[first_at..].find(['?', '#']).map_or(text.len(), |at| first_at + at);
        let last_at = text[first_at..query].rfind('@').map_or(first_at, |at| first_at + at);
        // A user name contains no `/`, `?` or `#`, so a colon after one is not the password's.
        let user_info = &text[rest_start..last_at];
        let colon =
            user_info.find(':').filter(|colon| !user_info[..*colon].contains(['/', '?', '#']));
        if let Some(colon) = colon {
            text.replace_range(rest_start + colon + 1..last_at, "REDACTED");
        }
    }

    if let Some(query_start) = text.find('?') {
        let (head, query) = text.split_at(query_start + 1);
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_password_name(&percent_decode(name)) => {
                    format!("{name}=REDACTED")
                }
                _ => pair.to_owned(),
            })
            .collect();
        text = format!("{head}{}", redacted.join("&"));
    }
    text
}

/// Tells whether a connection parameter contains a secret: `password`, or another name ending
/// in it, such as libpq's `sslpassword`, in any case.
fn is_password_name(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with("password")
}

/// Decodes the `%XX` escapes of a URL component, leaving malformed ones as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| text.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                at += 3;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Replaces the value of each `password` or `sslpassword` keyword of a libpq keyword/value
/// connection string with `REDACTED`. Keywords and values are separated by whitespace, a value
/// may be written in single quotes with `\'` and `\\` escapes, and `=` may have whitespace
/// around it. Text
/// that is not such a string has no `password` keyword and comes back unchanged.
fn redact_keyword_value(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < bytes.len() {
        // Copy whitespace, then read a keyword up to whitespace or `=`.
        let start = at;
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let keyword_start = at;
        while at < bytes.len() && !bytes[at].is_ascii_whitespace() && bytes[at] != b'=' {
            at += 1;
        }
        let keyword = &text[keyword_start..at];
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if at >= bytes.len() || bytes[at] != b'=' {
            out.push_str(&text[start..at]);
            continue;
        }
        at += 1;
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        out.push_str(&text[start..at]);

        // Read the value, quoted or up to whitespace. libpq quotes with `'` only, but a
        // value in `"` is read to its closing quote too, so that no part of it is shown.
        let value_start = at;
        if at < bytes.len() && (bytes[at] == b'\'' || bytes[at] == b'"') {
            let quote = bytes[at];
            at += 1;
            while at < bytes.len() && bytes[at] != quote {
                at += if bytes[at] == b'\\' { 2 } else { 1 };
            }
            at = (at + 1).min(bytes.len());
        } else {
            while at < bytes.len() && !bytes[at].is_ascii_whitespace() {
                at += if bytes[at] == b'\\' { 2 } else { 1 };
            }
            at = at.min(bytes.len());
        }
        match is_password_name(keyword) {
            true => out.push_str("REDACTED"),
            false => out.push_str(&text[value_start..at]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_keyword_value_passwords() {
        for (given, expected) in [
            (
                "host=db user=b password=s3cret dbname=x",
                "host=db user=b password=REDACTED dbname=x",
            ),
            ("password = 'a b\\'c' host=db", "password = REDACTED host=db"),
            ("host=db password=", "host=db password=REDACTED"),
            ("host=db PASSWORD=x", "host=db PASSWORD=REDACTED"),
            ("host=db passfile=/home/b/.pgpass", "host=db passfile=/home/b/.pgpass"),
            ("host='my db' user=b", "host='my db' user=b"),
            ("host=db password=\"x y\" user=b", "host=db password=REDACTED user=b"),
            ("host=db sslpassword=k", "host=db sslpassword=REDACTED"),
        ] {
            assert_eq!(redact(given), expected, "{given}");
        }
    }

    #[test]
    fn redact_hides_url_passwords_only() {
        for (given, expected) in [
            (
                "postgres://beacon:s3cret@db:5432/beacon",
                "postgres://beacon:REDACTED@db:5432/beacon",
            ),
            ("postgres://beacon:p@ss@db/beacon", "postgres://beacon:REDACTED@db/beacon"),
            ("postgres://beacon@db/beacon", "postgres://beacon@db/beacon"),
            (
                "postgres://db/beacon?user=b&password=x&sslmode=require",
                "postgres://db/beacon?user=b&password=REDACTED&sslmode=require",
            ),
            ("https://host/keys?a=b:c@d", "https://host/keys?a=b:c@d"),
            ("postgres://u:pa?ss@127.0.0.1/db", "postgres://u:REDACTED@127.0.0.1/db"),
            ("postgres://u:pa/ss@127.0.0.1/db", "postgres://u:REDACTED@127.0.0.1/db"),
            ("postgres://u:pa#ss@db/beacon", "postgres://u:REDACTED@db/beacon"),
            ("postgres://u:p@s/s@db/beacon", "postgres://u:REDACTED@db/beacon"),
            (
                "postgres://u:pw@db/beacon?application_name=a@b",
                "postgres://u:REDACTED@db/beacon?application_name=a@b",
            ),
            ("postgres://user@server:pw@db/beacon", "postgres://user@server:REDACTED@db/beacon"),
            ("postgres://db/beacon?pass%77ord=x", "postgres://db/beacon?pass%77ord=REDACTED"),
            ("postgres://db/beacon?sslpassword=x", "postgres://db/beacon?sslpassword=REDACTED"),
            ("./beacon-data/signing-key.pem", "./beacon-data/signing-key.pem"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
        ] {
            assert_eq!(redact(given), expected, "{given}");
        }
    }

    #[test]
    fn quote_escapes_toml_specials() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("line\nnext"), r#""line\nnext""#);
    }
}
