//! The `beacon` command: serve the Graph-compatible API, or mint a development token.
//!
//! `beacon serve` opens (or creates) the data folder, with its SQLite database and signing key,
//! or uses the PostgreSQL database that `--database` names, and serves HTTP until SIGTERM or
//! Ctrl-C, letting requests in flight finish. It accepts the
//! development tokens of `beacon token` (`--auth dev`, the default) or an identity provider's
//! tokens (`--auth jwks`).
//! `beacon token` prints a bearer token that a dev mode server using the same data folder (or
//! the same `--signing-key-file`) accepts.
//! `beacon config` prints the settings `serve` would use and where each comes from (see
//! `config`), and `beacon backup` and `beacon restore` copy the SQLite store (see `backup`).
//! `beacon import` and `beacon export` load a partner's rows into the store and write them out
//! (see the modules `import` and `export`).

mod backup;
mod bulk;
mod config;
mod csv;
mod export;
mod import;
mod progress;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use beacon_server::auth::{
    Authenticator, DEFAULT_MIN_REFETCH, DEV_PARTNER_TENANT, JwksSettings, KeySource,
    MAX_CLOCK_SKEW, READ_PERMISSION, READ_WRITE_PERMISSION, SigningKey, TokenRequest,
    create_private_dir, normalize_guid,
};
use beacon_server::limits::RequestLimits;
use beacon_server::monitoring::{Metrics, MetricsEndpoint};
use beacon_server::paging::SkiptokenKey;
use beacon_server::rate_limit::{RateLimit, RateLimiter, RateLimits};
use beacon_server::{AppState, ServeLimits, app, metrics_app, serve};
use beacon_store::Store;
use beacon_store::postgres::{PostgresOptions, PostgresStore};
use beacon_store::sqlite::{SqliteOptions, SqliteStore};
use clap::{Args, CommandFactory, Parser, Subcommand};

/// The database file's name inside the data folder.
const DATABASE_FILE: &str = "beacon.sqlite3";

/// The signing key's file name inside the data folder.
const SIGNING_KEY_FILE: &str = "signing-key.pem";

/// The maximum lifetime of a token from `beacon token`.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// The bounds of `--jwks-min-refetch`: at least a second, so that tokens with made-up key ids
/// cannot make the server fetch on every request, and at most a day.
const MIN_REFETCH_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));

#[derive(Debug, Parser)]
#[command(
    name = "beacon",
    version,
    about = "A self-hostable, Microsoft Graph-compatible service for device-compliance data \
             across managed tenants."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The arguments are parsed once per process, so the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Print a development bearer token for a server that uses the same data folder or key.
    Token(TokenArgs),
    /// Print the settings that `serve` would use with the same options, and where each comes
    /// from, with passwords hidden.
    Config(ServeArgs),
    /// Copy the SQLite store to a new file while servers keep using it.
    Backup(backup::BackupArgs),
    /// Replace the SQLite store with a backup; fails while a server uses the store.
    Restore(backup::RestoreArgs),
    /// Load rows from NDJSON, CSV or Graph list responses into the store, all or nothing.
    Import(import::ImportArgs),
    /// Write a partner's rows as NDJSON or CSV, in key order.
    Export(export::ExportArgs),
}

/// Locations of the data folder and the signing key, shared by every subcommand.
#[derive(Debug, Args)]
struct StorageArgs {
    /// Folder for the database and, unless --signing-key-file is given, the signing key.
    /// Created with owner-only permissions if absent.
    #[arg(long, env = "BEACON_DATA_DIR", default_value = "./beacon-data", value_name = "DIR")]
    data_dir: PathBuf,

    /// PKCS#8 PEM private key (P-256 or RSA) that signs and verifies tokens. `serve` creates a
    /// new P-256 key there if the file is absent, and `token` requires it to exist. Point
    /// several servers at one file so they accept the same tokens. [default:
    /// DIR/signing-key.pem, created by either command]
    #[arg(long, env = "BEACON_SIGNING_KEY_FILE", value_name = "PATH")]
    signing_key_file: Option<PathBuf>,

    /// TOML file of settings, whose keys are the long option names of `serve`, such as
    /// listen or rate-limit. Environment variables and options override it. [default:
    /// DIR/beacon.toml, when it exists]
    #[arg(long, env = "BEACON_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
}

impl StorageArgs {
    fn signing_key_path(&self) -> PathBuf {
        self.signing_key_file.clone().unwrap_or_else(|| self.data_dir.join(SIGNING_KEY_FILE))
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// IP address and port to listen on, such as 127.0.0.1:8080 or [::]:8080; port 0 picks a
    /// free port.
    #[arg(long, env = "BEACON_LISTEN", default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,

    /// IP address and port of a separate listener for GET /metrics, such as 127.0.0.1:9090;
    /// port 0 picks a free port. With it, /metrics on the main listener gets the error of any
    /// path outside /beta. [default: /metrics on the main listener]
    #[arg(long, env = "BEACON_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,

    #[command(flatten)]
    storage: StorageArgs,

    #[command(flatten)]
    auth: AuthArgs,

    /// Scheme and host that absolute URLs in responses start with, such as
    /// https://beacon.example.com, for a server behind a proxy. [default: http:// and the
    /// request's Host header]
    #[arg(long, env = "BEACON_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,

    /// Database to store entities in: postgres://USER@HOST:PORT/DATABASE (or postgresql://)
    /// for PostgreSQL, or sqlite:PATH or a file path for the embedded SQLite store. [default:
    /// DIR/beacon.sqlite3]
    #[arg(long, env = "BEACON_DATABASE_URL", value_name = "URL")]
    database: Option<String>,

    /// PEM file of CA certificates that PostgreSQL server certificates may be signed by,
    /// trusted besides the system's CAs, such as the CA bundle of a managed PostgreSQL
    /// service. The URL's sslmode decides whether TLS is used: disable, prefer (the default:
    /// TLS whenever the server offers it) or require.
    #[arg(long, env = "BEACON_DATABASE_CA_FILE", value_name = "PATH")]
    database_ca_file: Option<PathBuf>,

    /// Maximum number of connections to PostgreSQL, from 1 to 1024. SQLite uses --db-readers.
    #[arg(
        long,
        env = "BEACON_DB_POOL_SIZE",
        default_value_t = 16,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    db_pool_size: u16,

    /// Number of read connections to the SQLite database, from 1 to 64.
    #[arg(
        long,
        env = "BEACON_DB_READERS",
        default_value_t = 4,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=64)
    )]
    db_readers: u16,

    /// For tests only, and hidden from the help: the maximum number of 4 KiB pages of the
    /// SQLite database file. Writes that would grow the file past it get `507`, as on a full
    /// disk, so the tests can fill the store without filling a disk.
    #[arg(long, env = "BEACON_SQLITE_MAX_PAGE_COUNT", hide = true, value_name = "PAGES")]
    sqlite_max_page_count: Option<u32>,

    /// How long a client may take to send a request's headers once it has started, such as
    /// 30s. The connection is closed after that.
    #[arg(
        long,
        env = "BEACON_HEADER_READ_TIMEOUT",
        default_value = "30s",
        value_name = "DURATION",
        value_parser = humantime::parse_duration
    )]
    header_read_timeout: Duration,

    /// How long a response may wait for the client to read any of it, such as 30s. The
    /// connection is closed after that, so a client that stops reading cannot hold it.
    #[arg(
        long,
        env = "BEACON_WRITE_TIMEOUT",
        default_value = "30s",
        value_name = "DURATION",
        value_parser = humantime::parse_duration
    )]
    write_timeout: Duration,

    /// How long a client may take to send a request body, such as 30s. The request gets 408
    /// after that.
    #[arg(
        long,
        env = "BEACON_BODY_READ_TIMEOUT",
        default_value = "30s",
        value_name = "DURATION",
        value_parser = humantime::parse_duration
    )]
    body_read_timeout: Duration,

    /// How long handling a request may take once its body has been read, such as 30s. The
    /// request gets 503 after that.
    #[arg(
        long,
        env = "BEACON_REQUEST_TIMEOUT",
        default_value = "30s",
        value_name = "DURATION",
        value_parser = humantime::parse_duration
    )]
    request_timeout: Duration,

    /// Requests a second that each partner tenant may send, such as 50 or 0.5; 0 turns the
    /// partner limit off.
    #[arg(
        long,
        env = "BEACON_RATE_LIMIT",
        default_value_t = 50.0,
        value_name = "PER_SECOND",
        value_parser = parse_rate
    )]
    rate_limit: f64,

    /// Requests that each partner tenant may send at once before --rate-limit applies.
    #[arg(
        long,
        env = "BEACON_RATE_BURST",
        default_value_t = 100,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    rate_burst: u32,

    /// Requests a second that each client may send: each client application, or each IP
    /// address for tokens that name none, within a partner tenant, and each IP address for
    /// requests without a valid token. 0 turns the client limits off.
    #[arg(
        long,
        env = "BEACON_CLIENT_RATE_LIMIT",
        default_value_t = 50.0,
        value_name = "PER_SECOND",
        value_parser = parse_rate
    )]
    client_rate_limit: f64,

    /// Requests that each client may send at once before --client-rate-limit applies.
    #[arg(
        long,
        env = "BEACON_CLIENT_RATE_BURST",
        default_value_t = 100,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    client_rate_burst: u32,

    /// Maximum length of the request URL (path and query) in bytes, from 1024 to 65534; a
    /// longer one gets 414.
    #[arg(
        long,
        env = "BEACON_MAX_URL_BYTES",
        default_value_t = 16384,
        value_name = "BYTES",
        value_parser = clap::value_parser!(u32).range(1024..=65534)
    )]
    max_url_bytes: u32,

    /// Maximum total size of a request's headers in bytes, from 4096 to 1048576; larger
    /// headers get 431.
    #[arg(
        long,
        env = "BEACON_MAX_HEADER_BYTES",
        default_value_t = 32768,
        value_name = "BYTES",
        value_parser = clap::value_parser!(u32).range(4096..=1_048_576)
    )]
    max_header_bytes: u32,

    /// Maximum number of header fields in a request, from 16 to 1000; more get 431.
    #[arg(
        long,
        env = "BEACON_MAX_HEADERS",
        default_value_t = 100,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(16..=1000)
    )]
    max_headers: u16,

    /// Maximum number of client connections served at once, from 1 to 1000000; each connection past it gets
    /// 503 and is closed. Keep it below the open-file limit (ulimit -n).
    #[arg(
        long,
        env = "BEACON_MAX_CONNECTIONS",
        default_value_t = 1024,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    max_connections: u32,

    /// How long requests in flight may take to finish after SIGTERM or Ctrl-C, such as 30s.
    /// Connections still open after that are closed.
    #[arg(
        long,
        env = "BEACON_SHUTDOWN_TIMEOUT",
        default_value = "30s",
        value_name = "DURATION",
        value_parser = humantime::parse_duration
    )]
    shutdown_timeout: Duration,

    /// Log format on standard error. The RUST_LOG environment variable sets the level, such as
    /// RUST_LOG=debug.
    #[arg(
        long,
        env = "BEACON_LOG_FORMAT",
        value_enum,
        default_value = "text",
        value_name = "FORMAT"
    )]
    log_format: LogFormat,
}

/// The token options of `serve`.
#[derive(Debug, Args)]
struct AuthArgs {
    /// Tokens to accept. dev accepts tokens from `beacon token`, signed with the data folder's
    /// key. jwks accepts tokens from an identity provider such as Microsoft Entra ID, and needs
    /// --jwks-url or --jwks-file, --issuer and --audience.
    #[arg(
        long,
        env = "BEACON_AUTH",
        value_enum,
        default_value = "dev",
        value_name = "MODE",
        requires_ifs = [("jwks", "jwks_source"), ("jwks", "issuers"), ("jwks", "audiences")]
    )]
    auth: AuthMode,

    /// URL of the identity provider's JSON Web Key Set, such as
    /// https://login.microsoftonline.com/TENANT/discovery/v2.0/keys. It must be https, except
    /// for loopback hosts. Fetched at start, again for a token whose key id is unknown, and
    /// every hour. [jwks mode]
    #[arg(
        long,
        env = "BEACON_JWKS_URL",
        value_name = "URL",
        group = "jwks_source",
        value_parser = parse_jwks_url
    )]
    jwks_url: Option<KeySource>,

    /// JSON Web Key Set file to use instead of --jwks-url. It must be readable at start, and
    /// is read again for a token whose key id is unknown and every hour. [jwks mode]
    #[arg(long, env = "BEACON_JWKS_FILE", value_name = "PATH", group = "jwks_source")]
    jwks_file: Option<PathBuf>,

    /// Accepted token issuer (iss), repeatable or comma-separated, such as
    /// https://login.microsoftonline.com/TENANT/v2.0. {tenantid} in a value stands for the
    /// token's tid. [jwks mode]
    #[arg(
        long = "issuer",
        env = "BEACON_ISSUER",
        value_name = "ISS",
        value_delimiter = ',',
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    issuers: Vec<String>,

    /// Accepted token audience (aud), repeatable or comma-separated: the Application ID URI or
    /// the client id of Beacon's app registration. [jwks mode]
    #[arg(
        long = "audience",
        env = "BEACON_AUDIENCE",
        value_name = "AUD",
        value_delimiter = ',',
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    audiences: Vec<String>,

    /// How far a token's exp and nbf may be off from this server's clock, from 0s to 10m.
    #[arg(
        long,
        env = "BEACON_CLOCK_SKEW",
        default_value = "60s",
        value_name = "DURATION",
        value_parser = parse_clock_skew
    )]
    clock_skew: Duration,

    /// Shortest time between two fetches of the key set for tokens with unknown key ids, from
    /// 1s to 1day. Requests that need a key in between get 401, or 503 if the last fetch
    /// failed. [default: 30s] [jwks mode]
    #[arg(
        long,
        env = "BEACON_JWKS_MIN_REFETCH",
        value_name = "DURATION",
        value_parser = parse_min_refetch
    )]
    jwks_min_refetch: Option<Duration>,
}

impl AuthArgs {
    /// Returns the jwks mode options given in dev mode, which clap cannot reject by itself.
    fn jwks_options_in_dev_mode(&self) -> Vec<&'static str> {
        let options = [
            ("--jwks-url", self.jwks_url.is_some()),
            ("--jwks-file", self.jwks_file.is_some()),
            ("--issuer", !self.issuers.is_empty()),
            ("--audience", !self.audiences.is_empty()),
            ("--jwks-min-refetch", self.jwks_min_refetch.is_some()),
        ];
        match self.auth {
            AuthMode::Dev => {
                options.iter().filter(|(_, present)| *present).map(|(name, _)| *name).collect()
            }
            AuthMode::Jwks => Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum AuthMode {
    /// Tokens from `beacon token`, signed with the data folder's key.
    Dev,
    /// Tokens from an identity provider, verified with its JSON Web Key Set.
    Jwks,
}

fn parse_jwks_url(text: &str) -> Result<KeySource, String> {
    KeySource::url(text).map_err(|error| error.to_string())
}

fn parse_clock_skew(text: &str) -> Result<Duration, String> {
    let skew = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if skew > MAX_CLOCK_SKEW {
        return Err("the clock skew must be at most 10m".to_owned());
    }
    Ok(skew)
}

fn parse_min_refetch(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    let (min, max) = MIN_REFETCH_RANGE;
    if interval < min || interval > max {
        return Err("the interval must be from 1s to 1day".to_owned());
    }
    Ok(interval)
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

#[derive(Debug, Args)]
struct TokenArgs {
    #[command(flatten)]
    storage: StorageArgs,

    /// Partner tenant id (a GUID) the token acts for. Each partner can read only its own data.
    #[arg(long, default_value = DEV_PARTNER_TENANT, value_name = "GUID")]
    tenant: String,

    /// Permission to grant, repeatable: DeviceManagementConfiguration.Read.All or
    /// DeviceManagementConfiguration.ReadWrite.All. [default:
    /// DeviceManagementConfiguration.ReadWrite.All]
    #[arg(long = "scope", value_name = "NAME")]
    scopes: Vec<String>,

    /// How long the token is valid, from 1s to 366days, such as 30m, 1h or 7days.
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = humantime::parse_duration)]
    expires_in: Duration,
}

fn main() -> ExitCode {
    let (cli, settings) = match config::parse::<Cli>() {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            return ExitCode::from(2);
        }
    };
    if let Command::Serve(args) | Command::Config(args) = &cli.command {
        // A bad --database stops `config` as it stops `serve`, and names where it was set.
        if let Err(message) = parse_database(args.database.as_deref(), &args.storage.data_dir) {
            match settings.source_of("database").as_deref() {
                None | Some("command line") => eprintln!("error: {message}"),
                Some(source) => eprintln!("error: {message} (the value is from {source})"),
            }
            return ExitCode::from(2);
        }

        let misplaced = args.auth.jwks_options_in_dev_mode();
        if !misplaced.is_empty() {
            let verb = if misplaced.len() == 1 { "applies" } else { "apply" };
            // Name the file line or variable of each, which the user may not know is set. When
            // some come from the command line and some not, every one is named.
            let sources: Vec<Option<String>> = misplaced
                .iter()
                .map(|option| settings.source_of(option.trim_start_matches('-')))
                .collect();
            let all_from_command_line = sources
                .iter()
                .all(|source| matches!(source.as_deref(), None | Some("command line")));
            let named: Vec<String> = misplaced
                .iter()
                .zip(&sources)
                .map(|(option, source)| match (all_from_command_line, source) {
                    (false, Some(source)) => format!("{option} (from {source})"),
                    _ => (*option).to_owned(),
                })
                .collect();
            let message = format!(
                "{} {verb} only with --auth jwks (or BEACON_AUTH=jwks), and the mode is dev; \
                 add --auth jwks or remove {}",
                named.join(", "),
                if misplaced.len() == 1 { "it" } else { "them" }
            );
            let mut command = Cli::command();
            command.build();
            let serve = command.find_subcommand_mut("serve").expect("serve is a subcommand");
            serve.error(clap::error::ErrorKind::ArgumentConflict, message).exit();
        }
    }
    let outcome = match cli.command {
        Command::Serve(args) => run_serve(args),
        Command::Token(args) => run_token(&args),
        Command::Config(args) => {
            print!("{}", settings.render(&derived_defaults(&args)));
            Ok(())
        }
        Command::Backup(args) => backup::run_backup(&args),
        Command::Restore(args) => backup::run_restore(&args),
        Command::Import(args) => import::run(args),
        Command::Export(args) => export::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// Returns the values that `serve` computes for the options left unset whose defaults depend
/// on the data folder, for `beacon config` to show.
fn derived_defaults(args: &ServeArgs) -> Vec<(&'static str, String)> {
    let data_dir = &args.storage.data_dir;
    let mut defaults = vec![
        ("signing-key-file", data_dir.join(SIGNING_KEY_FILE).display().to_string()),
        ("database", data_dir.join(DATABASE_FILE).display().to_string()),
    ];
    // Only jwks mode reads it, and dev mode rejects it, so a file made from the output of dev
    // mode must not contain it.
    if args.auth.auth == AuthMode::Jwks {
        let refetch = humantime::format_duration(DEFAULT_MIN_REFETCH).to_string();
        defaults.push(("jwks-min-refetch", refetch));
    }
    defaults
}

fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve_until_stopped(args))
}

async fn serve_until_stopped(args: ServeArgs) -> anyhow::Result<()> {
    // Before the store opens, so that what it records at start is kept.
    let metrics = Metrics::install().context("cannot install the metrics recorder")?;
    let public_url = args.public_url.as_deref().map(check_public_url).transpose()?;
    if args.header_read_timeout.is_zero()
        || args.write_timeout.is_zero()
        || args.body_read_timeout.is_zero()
        || args.request_timeout.is_zero()
    {
        bail!(
            "--header-read-timeout, --write-timeout, --body-read-timeout and --request-timeout \
             must be more than 0"
        );
    }

    // Load the identity provider's keys first, so that a broken key set file stops the start
    // before the data folder is touched.
    let jwks_authenticator = jwks_authenticator(&args.auth).await?;

    // Check an existing key, then open the database, and create a missing key only once the
    // database is open, so a refused start-up leaves the data folder as it was.
    let data_dir = &args.storage.data_dir;
    open_data_dir(data_dir)?;
    let key_path = args.storage.signing_key_path();
    // A key file given by name is shared with other servers, so a missing one is an error: a
    // new key there would sign tokens and skiptokens that the other servers reject.
    if args.storage.signing_key_file.is_some() && !key_path.exists() {
        bail!(
            "the signing key file {} does not exist; give the key file that the other servers \
             use, or leave --signing-key-file out to create a key in the data folder",
            key_path.display()
        );
    }
    let existing_key = if key_path.exists() { Some(SigningKey::load(&key_path)?) } else { None };
    let choice = StoreChoice {
        database: args.database.as_deref(),
        ca_file: args.database_ca_file.as_deref(),
        pool_size: usize::from(args.db_pool_size),
        readers: usize::from(args.db_readers),
        max_page_count: args.sqlite_max_page_count,
        upgrade: true,
    };
    let store = open_store(&choice, data_dir).await?;
    let key = match existing_key {
        Some(key) => key,
        None => SigningKey::load_or_create(&key_path)?,
    };
    tracing::info!(key_id = key.key_id(), "signing key loaded");
    let authenticator = match jwks_authenticator {
        Some(authenticator) => authenticator,
        None => {
            let skew = args.auth.clock_skew;
            tracing::info!(clock_skew_s = skew.as_secs(), "accepting development tokens");
            Authenticator::dev(&key, skew)
        }
    };

    let request_limits = RequestLimits {
        max_url_bytes: args.max_url_bytes as usize,
        max_header_bytes: args.max_header_bytes as usize,
        max_headers: usize::from(args.max_headers),
        request_timeout: args.request_timeout,
    };
    let mut state = AppState {
        store: Arc::clone(&store),
        verifier: Arc::new(authenticator),
        skiptoken_key: SkiptokenKey::new(key.paging_secret()),
        public_url: public_url.map(Arc::from),
        body_read_timeout: args.body_read_timeout,
        limits: request_limits,
        rate_limiter: Arc::new(RateLimiter::new(RateLimits {
            partner: RateLimit { per_second: args.rate_limit, burst: args.rate_burst },
            client: RateLimit { per_second: args.client_rate_limit, burst: args.client_rate_burst },
        })),
        metrics: None,
    };
    let metrics = MetricsEndpoint { metrics, store: Arc::clone(&store) };
    let limits = ServeLimits {
        header_read_timeout: args.header_read_timeout,
        write_timeout: args.write_timeout,
        shutdown_grace: args.shutdown_timeout,
        max_connections: args.max_connections as usize,
        parser: request_limits.parser_limits(),
    };

    // Bind every listener before reporting any, so that a taken port stops the start.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr().context("cannot read the listening address")?;
    let metrics_listener = match args.metrics_listen {
        Some(metrics_address) => Some(
            tokio::net::TcpListener::bind(metrics_address)
                .await
                .with_context(|| format!("cannot listen for metrics on {metrics_address}"))?,
        ),
        None => None,
    };
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let signal = shutdown_signal();
    let shutdown = async move {
        signal.await;
        let _ = stopping.send(true);
    };

    // The metrics listener stops together with the main one.
    let metrics_server = match metrics_listener {
        Some(metrics_listener) => {
            let metrics_address =
                metrics_listener.local_addr().context("cannot read the metrics address")?;
            tracing::info!(%metrics_address, "serving metrics at http://{metrics_address}/metrics");
            let mut stopped = stopped.clone();
            let stop = async move {
                let _ = stopped.wait_for(|stopping| *stopping).await;
            };
            Some(tokio::spawn(serve(metrics_listener, metrics_app(metrics), stop, limits)))
        }
        None => {
            state.metrics = Some(metrics);
            None
        }
    };
    tracing::info!(%address, "listening on http://{address}");

    // Serve until a signal, let requests in flight finish, then let queued writes commit.
    serve(listener, app(state), shutdown, limits).await;
    if let Some(metrics_server) = metrics_server
        && let Err(error) = metrics_server.await
    {
        tracing::error!(error.message = %error, "the metrics listener failed");
    }
    tracing::info!("closing the store");
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Builds the jwks mode token checks and loads the key set, or returns `None` in dev mode.
async fn jwks_authenticator(args: &AuthArgs) -> anyhow::Result<Option<Authenticator>> {
    let source = match (args.auth, &args.jwks_url, &args.jwks_file) {
        (AuthMode::Dev, ..) => return Ok(None),
        (AuthMode::Jwks, Some(url), _) => url.clone(),
        (AuthMode::Jwks, None, Some(path)) => KeySource::File(path.clone()),
        (AuthMode::Jwks, None, None) => bail!("--auth jwks needs --jwks-url or --jwks-file"),
    };
    tracing::info!(
        source = %source,
        issuers = ?args.issuers,
        audiences = ?args.audiences,
        clock_skew_s = args.clock_skew.as_secs(),
        "accepting tokens signed with the identity provider's keys"
    );
    let settings = JwksSettings {
        source,
        issuers: args.issuers.clone(),
        audiences: args.audiences.clone(),
        clock_skew: args.clock_skew,
        min_refetch: args.jwks_min_refetch.unwrap_or(DEFAULT_MIN_REFETCH),
    };
    let authenticator =
        Authenticator::jwks(settings).await.context("cannot load the token signing keys")?;
    Ok(Some(authenticator))
}

fn run_token(args: &TokenArgs) -> anyhow::Result<()> {
    let Some(partner_tenant) = normalize_guid(&args.tenant) else {
        bail!("--tenant '{}' is not a GUID such as {DEV_PARTNER_TENANT}", args.tenant);
    };
    if args.expires_in < Duration::from_secs(1) || args.expires_in > MAX_TOKEN_LIFETIME {
        bail!("--expires-in must be from 1s to 366days");
    }
    let scopes = if args.scopes.is_empty() {
        vec![READ_WRITE_PERMISSION.to_owned()]
    } else {
        args.scopes.clone()
    };
    let known = [READ_PERMISSION, READ_WRITE_PERMISSION];
    if let Some(unknown) = scopes.iter().find(|s| !known.contains(&s.as_str())) {
        bail!(
            "--scope '{unknown}' is not a permission that Beacon checks; use {READ_PERMISSION} \
             or {READ_WRITE_PERMISSION}"
        );
    }

    // An explicit key file must exist, since a new key would sign tokens no server accepts.
    // The data folder's key is created on first use, as `serve` would create it.
    let key_path = args.storage.signing_key_path();
    let key = if args.storage.signing_key_file.is_some() {
        if !key_path.exists() {
            bail!(
                "the signing key file {} does not exist; give the file that the server uses",
                key_path.display()
            );
        }
        SigningKey::load(&key_path)?
    } else {
        open_data_dir(&args.storage.data_dir)?;
        let created = !key_path.exists();
        let key = SigningKey::load_or_create(&key_path)?;
        if created {
            eprintln!(
                "note: created a new signing key at {path}; only a server that uses the key \
                 file {path} accepts this token",
                path = key_path.display()
            );
        }
        key
    };
    let token = key.mint(&TokenRequest { partner_tenant, scopes, lifetime: args.expires_in })?;
    println!("{token}");
    Ok(())
}

/// Parses a rate in requests a second: a finite number of at least 0.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        // Below one request a day, a wait no longer fits a sensible Retry-After.
        Ok(rate) if rate == 0.0 || (MIN_RATE..=MAX_RATE).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "'{text}' is not a rate from {MIN_RATE} to {MAX_RATE} requests a second (or 0 to turn \
             the limit off), such as 50 or 0.5"
        )),
    }
}

/// The lowest rate a rate limit takes other than 0: about one request a day.
const MIN_RATE: f64 = 0.00001;

/// The highest rate a rate limit takes.
const MAX_RATE: f64 = 1_000_000.0;

/// The database that stores the entities.
#[derive(Debug, PartialEq, Eq)]
enum Database {
    /// The embedded SQLite store in this file.
    Sqlite(PathBuf),
    /// The PostgreSQL database at this connection URL.
    Postgres(String),
}

/// Reads `--database`: a PostgreSQL URL, `sqlite:PATH`, or a path; without it, the SQLite file
/// in the data folder.
///
/// An empty path and SQLite's in-memory names are rejected, because SQLite would give each
/// connection a database of its own and acknowledged writes would be lost. So are other URL
/// schemes and libpq's `key=value` form, which would otherwise be taken for file names.
fn parse_database(database: Option<&str>, data_dir: &Path) -> Result<Database, String> {
    let Some(given) = database else {
        return Ok(Database::Sqlite(data_dir.join(DATABASE_FILE)));
    };
    // The scheme is case-insensitive in URLs, but the PostgreSQL driver takes lowercase only.
    if let Some((scheme, rest)) = given.split_once("://")
        && matches!(scheme.to_ascii_lowercase().as_str(), "postgres" | "postgresql")
    {
        return Ok(Database::Postgres(format!("{}://{rest}", scheme.to_ascii_lowercase())));
    }
    if let Some((scheme, _)) = given.split_once("://") {
        return Err(format!(
            "--database '{scheme}://…' is not supported; give postgres://USER@HOST:PORT/DATABASE \
             for PostgreSQL, or sqlite:PATH or a file path for SQLite"
        ));
    }
    let path = given.strip_prefix("sqlite:").unwrap_or(given);
    if path.trim().is_empty() || path == ":memory:" || path.starts_with("file::memory:") {
        return Err(format!(
            "--database '{given}' names no database file; an in-memory or empty SQLite name \
             would lose every write, so give a file path or leave --database out to use the \
             data folder"
        ));
    }
    let libpq_keys = ["host=", "hostaddr=", "port=", "dbname=", "user=", "password=", "sslmode="];
    if given.split_whitespace().any(|part| libpq_keys.iter().any(|key| part.starts_with(key))) {
        return Err("--database takes a URL, not libpq's key=value form; write it as \
                    postgres://USER@HOST:PORT/DATABASE?sslmode=…"
            .to_owned());
    }
    Ok(Database::Sqlite(PathBuf::from(path)))
}

/// The options that choose and size the store, which `serve`, `import` and `export` share.
struct StoreChoice<'a> {
    /// `--database`, as given.
    database: Option<&'a str>,
    /// `--database-ca-file`.
    ca_file: Option<&'a Path>,
    /// The maximum number of PostgreSQL connections.
    pool_size: usize,
    /// The number of SQLite read connections.
    readers: usize,
    /// The size cap of the SQLite file in pages, for tests only.
    max_page_count: Option<u32>,
    /// Whether to upgrade a store at an older schema version. Only `serve` does, so that an
    /// import or export beside an older server leaves its schema alone.
    upgrade: bool,
}

/// Opens the store that `--database` selects and applies its pending migrations.
async fn open_store(choice: &StoreChoice<'_>, data_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    let database = parse_database(choice.database, data_dir).map_err(anyhow::Error::msg)?;
    match database {
        Database::Sqlite(path) => {
            if let Some(ca_file) = choice.ca_file {
                tracing::warn!(
                    ca_file = %ca_file.display(),
                    "--database-ca-file is ignored, because the SQLite store opens no connections"
                );
            }
            let options = SqliteOptions {
                readers: choice.readers,
                max_page_count: choice.max_page_count,
                upgrade: choice.upgrade,
            };
            let opened = tokio::task::spawn_blocking({
                let path = path.clone();
                move || SqliteStore::open(&path, &options)
            })
            .await
            .context("the database open task failed")??;
            tracing::info!(database = %path.display(), "SQLite store opened");
            Ok(Arc::new(opened))
        }
        Database::Postgres(url) => {
            let options = PostgresOptions {
                pool_size: choice.pool_size,
                ca_file: choice.ca_file.map(Path::to_path_buf),
                upgrade: choice.upgrade,
                ..PostgresOptions::default()
            };
            let opened = PostgresStore::open(&url, &options).await?;
            // The URL may contain a password, so only its host and database are logged.
            let config: Option<beacon_store::postgres::Config> = url.parse().ok();
            let hosts = config.as_ref().map(|config| format!("{:?}", config.get_hosts()));
            let name = config.as_ref().and_then(|config| config.get_dbname().map(str::to_owned));
            let ssl_mode = config.as_ref().map(|config| format!("{:?}", config.get_ssl_mode()));
            tracing::info!(
                hosts = hosts.as_deref().unwrap_or("?"),
                database = name.as_deref().unwrap_or("?"),
                ssl_mode = ssl_mode.as_deref().unwrap_or("?"),
                pool_size = options.pool_size,
                "PostgreSQL store opened"
            );
            Ok(Arc::new(opened))
        }
    }
}

/// Creates the data folder if absent and checks that it is a folder.
fn open_data_dir(path: &Path) -> anyhow::Result<()> {
    if path.exists() && !path.is_dir() {
        bail!("the data folder {} exists but is not a folder", path.display());
    }
    create_private_dir(path)
        .with_context(|| format!("cannot create the data folder {}", path.display()))
}

/// Checks that `--public-url` is `http://` or `https://` followed by a host (an ASCII name,
/// an IPv4 address or a bracketed IPv6 address) and an optional port, and returns it with a
/// lowercase scheme and no trailing slash.
fn check_public_url(url: &str) -> anyhow::Result<String> {
    let invalid = || {
        anyhow::anyhow!(
            "--public-url '{url}' must be http:// or https:// and a host with an optional port, \
             and no path, such as https://beacon.example.com; write a non-ASCII host name in \
             its punycode form"
        )
    };
    let trimmed = url.strip_suffix('/').unwrap_or(url);
    let (scheme, authority) = trimmed.split_once("://").ok_or_else(invalid)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(invalid());
    }

    // Split off the port, minding the colons inside a bracketed IPv6 address.
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let valid_port = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    let valid_host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(address) => address.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && !host.starts_with(['-', '.'])
                && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
    };
    if !valid_port || !valid_host {
        return Err(invalid());
    }
    Ok(format!("{scheme}://{authority}"))
}

/// Writes an error and its causes on one line. A cause whose text the line already contains,
/// or that only adds to the text of the cause before it, is left out, since library errors
/// often repeat their source's message.
fn describe(error: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let repeats = line.contains(&text) || (!previous.is_empty() && text.contains(&previous));
        if !repeats {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        previous = text;
    }
    line
}

/// Starts logging to standard error at the levels of `RUST_LOG`, or at info when it is unset
/// or invalid. An invalid one is reported once logging runs.
fn init_logging(format: LogFormat) {
    let (filter, invalid) = match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, None),
        Err(error) => {
            let invalid = std::env::var_os("RUST_LOG").map(|_| error.to_string());
            (tracing_subscriber::EnvFilter::new("info"), invalid)
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    if let Some(error) = invalid {
        tracing::warn!(error.message = %error, "RUST_LOG is invalid, so the level is info");
    }
}

/// Waits for the next delivery of a signal, or forever if its handler could not be installed.
#[cfg(unix)]
async fn next_signal(stream: &mut Option<tokio::signal::unix::Signal>) {
    match stream {
        Some(stream) => {
            stream.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Installs the Ctrl-C and SIGTERM handlers and returns a future that completes on either.
///
/// The handlers are installed when this function runs, not when the future is first polled,
/// so a signal that arrives right after the server reports that it listens still stops it
/// gracefully instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};

        let install = |kind: SignalKind, name: &'static str| -> Option<Signal> {
            match signal(kind) {
                Ok(stream) => Some(stream),
                Err(error) => {
                    tracing::error!(error.message = %error, signal = name, "cannot listen for the signal");
                    None
                }
            }
        };
        let mut interrupt = install(SignalKind::interrupt(), "SIGINT");
        let mut terminate = install(SignalKind::terminate(), "SIGTERM");
        async move {
            tokio::select! {
                _ = next_signal(&mut interrupt) => tracing::info!("received Ctrl-C; shutting down"),
                _ = next_signal(&mut terminate) => tracing::info!("received SIGTERM; shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("received Ctrl-C; shutting down"),
            Err(error) => {
                tracing::error!(error.message = %error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_selects_the_store() {
        let data_dir = Path::new("/data");
        for (given, expected) in [
            (None, Database::Sqlite(PathBuf::from("/data/beacon.sqlite3"))),
            (Some("sqlite:/srv/b.db"), Database::Sqlite(PathBuf::from("/srv/b.db"))),
            (Some("relative.db"), Database::Sqlite(PathBuf::from("relative.db"))),
            (
                Some("postgres://beacon@db:5432/beacon"),
                Database::Postgres("postgres://beacon@db:5432/beacon".to_owned()),
            ),
            (
                Some("postgresql://db/beacon"),
                Database::Postgres("postgresql://db/beacon".to_owned()),
            ),
        ] {
            assert_eq!(parse_database(given, data_dir), Ok(expected), "{given:?}");
        }
    }

    #[test]
    fn database_names_that_lose_writes_are_rejected() {
        let data_dir = Path::new("/data");
        for given in
            ["", " ", "sqlite:", "sqlite::memory:", ":memory:", "file::memory:?cache=shared"]
        {
            let error = parse_database(Some(given), data_dir).unwrap_err();
            assert!(error.contains("names no database file"), "{given:?}: {error}");
        }
    }

    #[test]
    fn unknown_database_schemes_are_rejected() {
        let data_dir = Path::new("/data");
        for given in ["mysql://db/x", "http://db/x"] {
            let error = parse_database(Some(given), data_dir).unwrap_err();
            assert!(error.contains("is not supported"), "{given:?}: {error}");
        }
        let error =
            parse_database(Some("host=127.0.0.1 dbname=x sslmode=disable"), data_dir).unwrap_err();
        assert!(error.contains("key=value"), "{error}");
        assert_eq!(
            parse_database(Some("Postgres://db/x"), data_dir),
            Ok(Database::Postgres("postgres://db/x".to_owned()))
        );
    }

    #[test]
    fn public_url_accepts_hosts_ports_and_ipv6() {
        for (given, expected) in [
            ("https://beacon.example.com", "https://beacon.example.com"),
            ("HTTPS://beacon.example.com/", "https://beacon.example.com"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("http://[::1]", "http://[::1]"),
            ("http://xn--bcher-kva.example", "http://xn--bcher-kva.example"),
        ] {
            assert_eq!(check_public_url(given).unwrap(), expected, "{given}");
        }
    }

    #[test]
    fn public_url_rejects_what_is_not_a_host() {
        for given in [
            "beacon.example.com",
            "ftp://beacon.example.com",
            "http://",
            "http://:8080",
            "http://[",
            "http://[::1",
            "http://a:b:c",
            "http://host:99999",
            "http://host:0",
            "http://-",
            "https://user@host",
            "https://host/path",
            "https://host?query",
            "https://bücher.example",
            "https://evil.example\"><x",
        ] {
            assert!(check_public_url(given).is_err(), "{given} was accepted");
        }
    }

    #[test]
    fn error_description_leaves_out_repeated_causes() {
        let error = anyhow::Error::new(std::io::Error::other("file is not a database"))
            .context("cannot open the database x");
        assert_eq!(describe(&error), "cannot open the database x: file is not a database");
    }
}
