//! The `beacon` command: serve the Graph-compatible API, or mint a development token.
//!
//! `beacon serve` opens (or creates) the data folder, with its SQLite database and signing key,
//! and serves HTTP until SIGTERM or Ctrl-C, letting requests in flight finish.
//! `beacon token` prints a bearer token that a server using the same data folder (or the same
//! `--signing-key-file`) accepts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use beacon_server::auth::{
    DEV_PARTNER_TENANT, READ_WRITE_PERMISSION, SigningKey, TokenRequest, create_private_dir,
    normalize_guid,
};
use beacon_server::{AppState, app, serve};
use beacon_store::Store;
use beacon_store::sqlite::{SqliteOptions, SqliteStore};
use clap::{Args, Parser, Subcommand};

/// The database file's name inside the data folder.
const DATABASE_FILE: &str = "beacon.sqlite3";

/// The signing key's file name inside the data folder.
const SIGNING_KEY_FILE: &str = "signing-key.pem";

/// The maximum lifetime of a token from `beacon token`.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

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

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Print a development bearer token for a server that uses the same data folder or key.
    Token(TokenArgs),
}

/// Locations of the data folder and the signing key, shared by every subcommand.
#[derive(Debug, Args)]
struct StorageArgs {
    /// Folder for the database and, unless --signing-key-file is given, the signing key.
    /// Created with owner-only permissions if absent.
    #[arg(
        long,
        env = "BEACON_DATA_DIR",
        default_value = "./beacon-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,

    /// PKCS#8 PEM private key (P-256 or RSA) that signs and verifies tokens; created as a new
    /// P-256 key if absent. Point several servers at one file so they accept the same tokens.
    /// [default: DIR/signing-key.pem]
    #[arg(long, env = "BEACON_SIGNING_KEY_FILE", value_name = "PATH")]
    signing_key_file: Option<PathBuf>,
}

impl StorageArgs {
    fn signing_key_path(&self) -> PathBuf {
        self.signing_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(SIGNING_KEY_FILE))
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address and port to listen on; port 0 picks a free port.
    #[arg(
        long,
        env = "BEACON_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    listen: SocketAddr,

    #[command(flatten)]
    storage: StorageArgs,

    /// Scheme and host that absolute URLs in responses start with, such as
    /// https://beacon.example.com, for a server behind a proxy. [default: http:// and the
    /// request's Host header]
    #[arg(long, env = "BEACON_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,

    /// Number of read connections to the database.
    #[arg(long, env = "BEACON_DB_READERS", default_value_t = 4, value_name = "N")]
    db_readers: usize,

    /// Log format on standard error.
    #[arg(long, env = "BEACON_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
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

    /// How long the token is valid, such as 30m, 1h or 7days.
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = humantime::parse_duration)]
    expires_in: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => run_serve(args),
        Command::Token(args) => run_token(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
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
    // Open the data folder, the key and the database before accepting connections.
    let data_dir = &args.storage.data_dir;
    create_private_dir(data_dir)
        .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
    let key = SigningKey::load_or_create(&args.storage.signing_key_path())?;
    let database = data_dir.join(DATABASE_FILE);
    let options = SqliteOptions {
        readers: args.db_readers.max(1),
    };
    let opened = tokio::task::spawn_blocking({
        let database = database.clone();
        move || SqliteStore::open(&database, &options)
    })
    .await
    .context("the database open task failed")??;
    let store: Arc<dyn Store> = Arc::new(opened);
    tracing::info!(database = %database.display(), key_id = key.key_id(), "store opened");

    let public_url = args
        .public_url
        .as_deref()
        .map(check_public_url)
        .transpose()?;
    let state = AppState {
        store: Arc::clone(&store),
        verifier: Arc::new(key.verifier()),
        public_url: public_url.map(Arc::from),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    tracing::info!(%address, "listening on http://{address}");

    // Serve until a signal, let requests in flight finish, then let queued writes commit.
    serve(listener, app(state), shutdown_signal())
        .await
        .context("the server failed")?;
    tracing::info!("no requests left in flight; closing the store");
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn run_token(args: &TokenArgs) -> anyhow::Result<()> {
    let Some(partner_tenant) = normalize_guid(&args.tenant) else {
        bail!(
            "--tenant '{}' is not a GUID such as {DEV_PARTNER_TENANT}",
            args.tenant
        );
    };
    if args.expires_in.is_zero() || args.expires_in > MAX_TOKEN_LIFETIME {
        bail!("--expires-in must be more than 0 and at most 366 days");
    }
    let scopes = if args.scopes.is_empty() {
        vec![READ_WRITE_PERMISSION.to_owned()]
    } else {
        args.scopes.clone()
    };
    if let Some(bad) = scopes
        .iter()
        .find(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        bail!("--scope '{bad}' must be one permission name without spaces");
    }

    let key_path = args.storage.signing_key_path();
    if args.storage.signing_key_file.is_none() {
        create_private_dir(&args.storage.data_dir).with_context(|| {
            format!(
                "cannot create the data folder {}",
                args.storage.data_dir.display()
            )
        })?;
    }
    let key = SigningKey::load_or_create(&key_path)?;
    let token = key.mint(&TokenRequest {
        partner_tenant,
        scopes,
        lifetime: args.expires_in,
    })?;
    println!("{token}");
    Ok(())
}

/// Checks that `--public-url` is an absolute http or https URL without path, query or
/// fragment, and returns it without a trailing slash.
fn check_public_url(url: &str) -> anyhow::Result<String> {
    let trimmed = url.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    match rest {
        Some(authority) if !authority.is_empty() && !authority.contains(['/', '?', '#', ' ']) => {
            Ok(trimmed.to_owned())
        }
        _ => bail!(
            "--public-url '{url}' must be http:// or https:// and a host, with no path, such as \
             https://beacon.example.com"
        ),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error.message = %error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(error.message = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C; shutting down"),
        () = terminate => tracing::info!("received SIGTERM; shutting down"),
    }
}
