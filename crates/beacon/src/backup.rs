//! `beacon backup` and `beacon restore`: copies of the SQLite store.
//!
//! The work happens in [`beacon_store::sqlite::backup`]; this module resolves which database
//! the options name, as `serve` does, and reports the outcome. A PostgreSQL database is backed
//! up with PostgreSQL's own tools, so both commands stop with a message that names them.

use std::path::{Path, PathBuf};

use anyhow::bail;
use beacon_store::sqlite::backup;
use clap::Args;

use crate::{Database, open_data_dir, parse_database};

/// The location of the database: the options that `backup` and `restore` share, with the same
/// names, variables and settings-file keys as `serve`'s.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The server's data folder, whose beacon.sqlite3 is the database unless --database names
    /// another.
    #[arg(long, env = "BEACON_DATA_DIR", default_value = "./beacon-data", value_name = "DIR")]
    data_dir: PathBuf,

    /// The server's database: sqlite:PATH or a file path. [default: DIR/beacon.sqlite3]
    #[arg(long, env = "BEACON_DATABASE_URL", value_name = "URL")]
    database: Option<String>,

    /// TOML file of settings, read as `serve` reads it. [default: DIR/beacon.toml, when it
    /// exists]
    #[arg(long, env = "BEACON_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The new file to write the copy to; it must not exist.
    #[arg(value_name = "DEST")]
    destination: PathBuf,

    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file to restore, made by `beacon backup`.
    #[arg(value_name = "SRC")]
    source: PathBuf,

    #[command(flatten)]
    database: DatabaseArgs,
}

/// Copies the SQLite database to a new file while servers keep using it.
pub fn run_backup(args: &BackupArgs) -> anyhow::Result<()> {
    let database = sqlite_path(&args.database, "backup")?;
    let report = backup::backup(&database, &args.destination)?;
    println!(
        "wrote {} ({}, schema version {}, {} bytes) from {}; the copy took {:.3} s",
        args.destination.display(),
        rows(report.summary.rows),
        report.summary.schema_version,
        report.bytes,
        database.display(),
        report.snapshot.as_secs_f64()
    );
    Ok(())
}

/// Replaces the SQLite database with a backup, unless a server or a backup uses it.
pub fn run_restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let database = sqlite_path(&args.database, "restore")?;
    if let Some(folder) = database.parent().filter(|folder| !folder.as_os_str().is_empty()) {
        open_data_dir(folder)?;
    }
    let summary = backup::restore(&args.source, &database)?;
    println!(
        "restored {} from {} ({}, schema version {})",
        database.display(),
        args.source.display(),
        rows(summary.rows),
        summary.schema_version
    );
    Ok(())
}

fn rows(count: i64) -> String {
    if count == 1 { "1 row".to_owned() } else { format!("{count} rows") }
}

/// Returns the SQLite file that the options name, or an error for a PostgreSQL database.
fn sqlite_path(args: &DatabaseArgs, verb: &str) -> anyhow::Result<PathBuf> {
    match parse_database(args.database.as_deref(), Path::new(&args.data_dir))
        .map_err(anyhow::Error::msg)?
    {
        Database::Sqlite(path) => Ok(path),
        Database::Postgres(_) => bail!(
            "beacon {verb} copies only the SQLite store, and --database names a PostgreSQL \
             database; use PostgreSQL's tools: pg_dump -Fc to back it up and pg_restore to \
             restore it"
        ),
    }
}
