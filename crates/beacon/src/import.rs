//! `beacon import`: loads rows from NDJSON, CSV or Graph list responses straight into the
//! store, all or nothing.
//!
//! Every record goes through the body rules of a `POST` to the chosen view
//! ([`body::decode`], then [`EntityInput::into_create`]), within the same body size limit, and
//! a record without an `id` gets a new GUID as it would there.
//!
//! The work runs in steps on threads of their own:
//!
//! 1. A reader thread ([`split`]) splits the input into chunks of raw records.
//! 2. Check workers ([`check`]), as many as [`std::thread::available_parallelism`] reports,
//!    check the chunks in any order.
//! 3. A collector takes the outcomes strictly in input order, writes rejects, reports
//!    progress and hands batches of valid rows to the store's [`Import`], which stages them
//!    out of sight.
//! 4. The commit at the end makes the rows visible together.
//!
//! Because the collector takes the outcomes in input order, the first invalid record of the
//! input stops the import before the commit, so nothing is stored, unless `--skip-invalid`
//! sends it to a rejects file.
//!
//! [`body::decode`]: beacon_odata::body::decode
//! [`EntityInput::into_create`]: beacon_odata::body::EntityInput::into_create
//! [`Import`]: beacon_store::Import

mod check;
mod split;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, bail};
use beacon_odata::entity::Entity;
use beacon_odata::model::View;
use beacon_store::{ImportOutcome, KeyConflict, OnConflict, PartnerTenantId};
use clap::Args;
use crossbeam_channel::{Receiver, Sender};
use tokio::sync::mpsc;

use self::check::{CheckedChunk, Checker, Chunk, Place, Rejected};
use self::split::Reader;
use crate::bulk::BulkArgs;
use crate::progress::Progress;

/// The number of rows handed to the store at a time.
const BATCH_ROWS: usize = 10_000;

/// The number of batches that may wait for the store, which bounds the collector's lead.
const BATCHES_IN_FLIGHT: usize = 4;

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    bulk: BulkArgs,

    /// Input format: ndjson (one JSON object a line), csv (a header of property names, then
    /// one row a line), or json (Graph list responses, {"value":[…]}, one or more in a file
    /// or one a file in a folder). [default: json for a folder or a .json file, csv for a
    /// .csv file, ndjson otherwise]
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<ImportFormat>,

    /// Store the valid rows and write each invalid one to this new file (it must not exist)
    /// as an NDJSON line with its line or record number, the property, the reason and the
    /// record as given. Without it, the first invalid row stops the import and nothing is
    /// stored.
    #[arg(long, value_name = "REJECTS_FILE")]
    skip_invalid: Option<PathBuf>,

    /// What to do with a row whose id the partner already has, or that an earlier row of the
    /// input has: fail stores nothing and names the row, skip keeps the stored (or earlier)
    /// row, replace overwrites it with the later one.
    #[arg(long, value_enum, default_value = "fail", value_name = "RULE")]
    on_conflict: ConflictRule,

    /// File or folder to read, or - for standard input.
    #[arg(value_name = "FILE")]
    input: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ImportFormat {
    /// One JSON object a line, as `beacon export` writes it.
    Ndjson,
    /// Comma-separated values with a header, as `beacon export --format csv` writes them.
    Csv,
    /// Graph list responses: {"value":[…], "@odata.nextLink":…}.
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ConflictRule {
    /// Store nothing and name the first row with an existing id.
    Fail,
    /// Keep the row stored first.
    Skip,
    /// Overwrite with the row read last.
    Replace,
}

impl From<ConflictRule> for OnConflict {
    fn from(rule: ConflictRule) -> Self {
        match rule {
            ConflictRule::Fail => OnConflict::Fail,
            ConflictRule::Skip => OnConflict::Skip,
            ConflictRule::Replace => OnConflict::Replace,
        }
    }
}

/// Runs `beacon import`.
pub(crate) fn run(args: ImportArgs) -> anyhow::Result<()> {
    crate::init_logging(crate::LogFormat::Text);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(import(args))
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    // Check everything the user gave before the store is touched.
    let partner = args.bulk.partner()?;
    let view = args.bulk.view();
    let source = Source::resolve(&args.input, args.format)?;
    let rejects = match &args.skip_invalid {
        Some(path) => Some(Rejects::create(path)?),
        None => None,
    };

    // The rejects file exists from here on, and a rerun needs a new one.
    let outcome = import_rows(&args, partner, view, source, rejects).await;
    match (outcome, &args.skip_invalid) {
        (Err(error), Some(path)) => Err(anyhow::anyhow!(
            "{error:#}. The rejects file {} was written, so remove it or name another before \
             running the import again",
            path.display()
        )),
        (outcome, _) => outcome,
    }
}

/// Reads, checks and stages every record and commits the import.
async fn import_rows(
    args: &ImportArgs,
    partner: PartnerTenantId,
    view: View,
    source: Source,
    rejects: Option<Rejects>,
) -> anyhow::Result<()> {
    let store = args.bulk.open_store().await?;
    let on_conflict = OnConflict::from(args.on_conflict);
    let mut import =
        store.begin_import(&partner, on_conflict).await.context("cannot start the import")?;
    tracing::info!(partner = %partner, view = %view, on_conflict = %on_conflict, "importing");

    // Threads of their own read and check the records, and this task stages their batches.
    let (sender, mut receiver) = mpsc::channel(BATCHES_IN_FLIGHT);
    let reading = tokio::task::spawn_blocking(move || read_source(source, view, rejects, sender));
    let mut staging_error = None;
    let mut staged_rows = 0;
    while let Some(batch) = receiver.recv().await {
        staged_rows += batch.len();
        if let Err(error) = import.stage(batch).await {
            staging_error = Some(error);
            break;
        }
    }
    drop(receiver);
    tracing::debug!(rows = staged_rows, "staged every row");
    let read = reading.await.context("the collector thread failed")?;
    if let Some(error) = staging_error {
        return Err(anyhow::Error::new(error).context("cannot stage the rows; nothing was stored"));
    }
    let read = read?;

    let outcome = import.commit().await.context("cannot commit the import; nothing was stored")?;
    store.close().await;
    match outcome {
        ImportOutcome::Committed { stored, skipped } => {
            let rate = read.progress.rate(read.rows);
            eprintln!(
                "read {} rows: stored {stored}, skipped {skipped}, rejected {} ({rate:.0} rows/s)",
                read.rows, read.rejected
            );
            if let (Some(path), true) = (&args.skip_invalid, read.rejected > 0) {
                eprintln!("the rejected rows are in {}", path.display());
            }
            Ok(())
        }
        ImportOutcome::Conflict(conflict) => {
            bail!("{}", conflict_message(&read.origins, &conflict))
        }
    }
}

/// Describes a key conflict that stopped the import.
fn conflict_message(origins: &Origins, conflict: &KeyConflict) -> String {
    let at = origins.describe(conflict.position);
    match conflict.earlier {
        Some(earlier) => format!(
            "{at}: property 'id': the id '{}' is already used by {}; nothing was imported. Use \
             --on-conflict skip to keep the first row or replace to keep the last",
            conflict.id,
            origins.describe(earlier)
        ),
        None => format!(
            "{at}: property 'id': an entity with the id '{}' already exists; nothing was \
             imported. Use --on-conflict skip to keep it or replace to overwrite it",
            conflict.id
        ),
    }
}

/// The input of an import.
#[derive(Debug)]
enum Source {
    /// One NDJSON or CSV file, or standard input (`None`).
    Lines { format: ImportFormat, path: Option<PathBuf> },
    /// Graph list responses: one file, standard input (`None`), or the `.json` files of a
    /// folder in name order.
    Pages { paths: Vec<Option<PathBuf>> },
}

impl Source {
    /// Chooses the format and lists the files to read.
    fn resolve(input: &Path, format: Option<ImportFormat>) -> anyhow::Result<Source> {
        let stdin = input == Path::new("-");
        if !stdin && !input.exists() {
            bail!("the input {} does not exist", input.display());
        }
        let is_dir = !stdin && input.is_dir();
        let extension = input.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let format = format.unwrap_or(match extension.as_deref() {
            _ if is_dir => ImportFormat::Json,
            Some("json") => ImportFormat::Json,
            Some("csv") => ImportFormat::Csv,
            _ => ImportFormat::Ndjson,
        });
        if is_dir && format != ImportFormat::Json {
            bail!(
                "the input {} is a folder, which only --format json reads (one Graph list \
                 response a file)",
                input.display()
            );
        }
        let path = (!stdin).then(|| input.to_owned());
        match format {
            ImportFormat::Json if is_dir => {
                let mut paths = Vec::new();
                for entry in std::fs::read_dir(input)
                    .with_context(|| format!("cannot read the folder {}", input.display()))?
                {
                    let path = entry?.path();
                    let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
                    if json && path.is_file() {
                        paths.push(path);
                    }
                }
                if paths.is_empty() {
                    bail!("the folder {} contains no .json files", input.display());
                }
                paths.sort();
                Ok(Source::Pages { paths: paths.into_iter().map(Some).collect() })
            }
            ImportFormat::Json => Ok(Source::Pages { paths: vec![path] }),
            format => Ok(Source::Lines { format, path }),
        }
    }

    /// Returns the total size of the files, or `None` for standard input.
    fn total_bytes(&self) -> Option<u64> {
        let paths: Vec<&Option<PathBuf>> = match self {
            Source::Lines { path, .. } => vec![path],
            Source::Pages { paths } => paths.iter().collect(),
        };
        paths
            .into_iter()
            .map(|path| path.as_ref().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len()))
            .sum()
    }
}

/// The source of the rows' positions, which names a row by its file and line or record.
#[derive(Debug, Default)]
struct Origins {
    /// Each file's label and the position of its first row, in order.
    files: Vec<(u64, String)>,
    /// Whether positions count lines (NDJSON, CSV) or records (JSON).
    records: bool,
}

impl Origins {
    /// Names the row at `position`, such as `rows.ndjson line 12`.
    fn describe(&self, position: u64) -> String {
        let index = self.files.partition_point(|(first, _)| *first <= position).saturating_sub(1);
        let (first, label) = self.files.get(index).map_or((1, "input"), |(f, l)| (*f, l.as_str()));
        match self.records {
            true => format!("{label} record {}", position - first + 1),
            false => format!("{label} line {position}"),
        }
    }
}

fn label(path: &Option<PathBuf>) -> String {
    path.as_ref().map_or_else(|| "standard input".to_owned(), |p| p.display().to_string())
}

/// The report of the collector once the input is read.
#[derive(Debug)]
struct ReadSummary {
    /// The records read, valid or not.
    rows: u64,
    /// The records written to the rejects file.
    rejected: u64,
    /// How to name a row by its position.
    origins: Origins,
    /// The progress report, for the final rate.
    progress: Progress,
}

/// The NDJSON file of rejected rows.
#[derive(Debug)]
struct Rejects {
    out: BufWriter<File>,
    path: PathBuf,
}

impl Rejects {
    /// Creates the rejects file, which must not exist yet, so that a mistyped name (the input
    /// file's, say) cannot overwrite a file.
    fn create(path: &Path) -> anyhow::Result<Rejects> {
        let file = File::options().write(true).create_new(true).open(path).with_context(|| {
            format!(
                "cannot create the rejects file {}; it must be a new file, so remove it or name \
                 another",
                path.display()
            )
        })?;
        Ok(Rejects { out: BufWriter::new(file), path: path.to_owned() })
    }

    fn write(&mut self, rejection: &Rejection, unit: &str) -> anyhow::Result<()> {
        let mut line = serde_json::Map::new();
        line.insert("file".to_owned(), rejection.file.clone().into());
        line.insert(unit.to_owned(), rejection.number.into());
        line.insert("property".to_owned(), rejection.property.clone().into());
        line.insert("reason".to_owned(), rejection.reason.clone().into());
        line.insert("input".to_owned(), rejection.input.clone().into());
        if let Some(bytes) = &rejection.input_base64 {
            line.insert("inputBase64".to_owned(), bytes.clone().into());
        }
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.out
            .flush()
            .with_context(|| format!("cannot write the rejects file {}", self.path.display()))
    }
}

/// A record that failed the checks.
#[derive(Debug)]
struct Rejection {
    /// The file's label.
    file: String,
    /// The line or record number in the file.
    number: u64,
    /// The property at fault, when one is.
    property: Option<String>,
    /// The full message, as a `POST` would send it.
    reason: String,
    /// The record as given, with each invalid UTF-8 sequence replaced by U+FFFD.
    input: String,
    /// The record's bytes in standard Base64, when they are not valid UTF-8.
    input_base64: Option<String>,
}

/// A chunk for a check worker, with the channel for its outcomes.
type Job = (Chunk, Sender<CheckedChunk>);

/// Reads and checks every record and sends the valid rows to the store in batches.
///
/// The steps run on threads of their own: the reader splits the input into chunks of raw
/// records, the check workers check the chunks in any order, and the collector (the calling
/// thread) takes their outcomes strictly in input order. For each chunk the reader sends the
/// receiving end of its outcome channel to the collector, in order, so the collector waits
/// for the chunk that comes next and never for a later one.
fn read_source(
    source: Source,
    view: View,
    rejects: Option<Rejects>,
    sender: mpsc::Sender<Vec<(u64, Entity)>>,
) -> anyhow::Result<ReadSummary> {
    let progress = Progress::start(source.total_bytes());
    let bytes = Arc::new(AtomicU64::new(0));
    let workers = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    tracing::debug!(workers, "checking records");

    let jobs = start_check_workers(view, workers)?;
    // The reader blocks while `workers * CHUNKS_IN_FLIGHT_PER_WORKER` chunks wait for the
    // collector.
    let (order, in_order) = crossbeam_channel::bounded(workers * CHUNKS_IN_FLIGHT_PER_WORKER);
    let reader = start_reader(source, view, Arc::clone(&bytes), jobs, order)?;

    let mut collector = Collector {
        rejects,
        sender,
        batch: Vec::with_capacity(BATCH_ROWS),
        rows: 0,
        rejected: 0,
        progress,
        bytes,
    };
    let collected = collector.collect(&in_order);
    collector.progress.finish();
    // On an error the reader is left alone: it may be waiting for standard input, and it
    // stops at its next send now that the collector's channel is gone.
    drop(in_order);
    collected?;

    // The order channel closed, so the reader has returned.
    let origins = match reader.join() {
        Ok(read) => read?,
        Err(_) => bail!("the reader thread failed"),
    };
    collector.flush()?;
    if let Some(rejects) = collector.rejects.take() {
        rejects.finish()?;
    }
    Ok(ReadSummary {
        rows: collector.rows,
        rejected: collector.rejected,
        origins,
        progress: collector.progress,
    })
}

/// Starts `count` check workers for `view` and returns the queue of their jobs. They end
/// once every sender of the queue is dropped and every queued chunk is checked.
fn start_check_workers(view: View, count: usize) -> anyhow::Result<Sender<Job>> {
    let (jobs, queued) = crossbeam_channel::bounded::<Job>(count);
    for index in 0..count {
        let queued = queued.clone();
        std::thread::Builder::new()
            .name(format!("import-check-{index}"))
            .spawn(move || {
                let mut checker = Checker::new(view);
                for (chunk, outcome) in queued {
                    // The collector drops the receiver only when the import has stopped.
                    let _ = outcome.send(checker.check_chunk(chunk));
                }
            })
            .context("cannot start a check thread")?;
    }
    Ok(jobs)
}

/// Starts the reader thread, which queues each chunk in `jobs` and sends the receiver of
/// its outcomes to `order`. It returns how to name a row by its position.
fn start_reader(
    source: Source,
    view: View,
    bytes: Arc<AtomicU64>,
    jobs: Sender<Job>,
    order: Sender<Receiver<CheckedChunk>>,
) -> anyhow::Result<JoinHandle<anyhow::Result<Origins>>> {
    let send = move |chunk: Chunk| {
        let (outcome, checked) = crossbeam_channel::bounded(1);
        let stopped = || anyhow::anyhow!("the import stopped taking records");
        order.send(checked).map_err(|_| stopped())?;
        jobs.send((chunk, outcome)).map_err(|_| stopped())
    };
    std::thread::Builder::new()
        .name("import-read".to_owned())
        .spawn(move || Reader::new(view, bytes, send).read_source(source))
        .context("cannot start the reader thread")
}

/// The chunks that may wait for the collector, per check worker, which bounds the reader's
/// lead and the memory of records read but not yet handled.
const CHUNKS_IN_FLIGHT_PER_WORKER: usize = 2;

/// Handles the checked records in input order: sends the valid ones on in batches, and the
/// invalid ones into the rejects file or as the error that stops the import.
struct Collector {
    rejects: Option<Rejects>,
    sender: mpsc::Sender<Vec<(u64, Entity)>>,
    batch: Vec<(u64, Entity)>,
    rows: u64,
    rejected: u64,
    progress: Progress,
    /// Bytes of the input read so far.
    bytes: Arc<AtomicU64>,
}

impl Collector {
    /// Handles every chunk's outcomes, in the order the reader sent the chunks, until the
    /// reader has sent its last one.
    fn collect(&mut self, in_order: &Receiver<Receiver<CheckedChunk>>) -> anyhow::Result<()> {
        for checked in in_order {
            // A worker drops the sender without sending only if it panicked.
            let Ok(chunk) = checked.recv() else {
                bail!("a check thread failed, so not every record was checked");
            };
            for (place, outcome) in chunk.rows {
                self.accept(outcome, place, &chunk.file, chunk.unit)?;
            }
        }
        Ok(())
    }

    /// Queues a valid row at its position, or handles an invalid one, named by its number in
    /// `file`.
    fn accept(
        &mut self,
        outcome: Result<Entity, Rejected>,
        place: Place,
        file: &str,
        unit: &str,
    ) -> anyhow::Result<()> {
        self.rows += 1;
        match outcome {
            Ok(entity) => {
                self.batch.push((place.position, entity));
                if self.batch.len() >= BATCH_ROWS {
                    self.flush()?;
                }
            }
            Err(Rejected { fault, input, input_base64 }) => {
                let number = place.number;
                let Some(rejects) = &mut self.rejects else {
                    let property = fault
                        .property
                        .as_deref()
                        .map(|name| format!("property '{name}': "))
                        .unwrap_or_default();
                    bail!(
                        "{file} {unit} {number}: {property}{} Nothing was imported.",
                        fault.reason
                    );
                };
                let rejection = Rejection {
                    file: file.to_owned(),
                    number,
                    property: fault.property,
                    reason: fault.reason,
                    input,
                    input_base64,
                };
                rejects.write(&rejection, unit)?;
                self.rejected += 1;
            }
        }
        if self.rows.is_multiple_of(1024) {
            self.progress.update(self.rows, self.bytes.load(Ordering::Relaxed));
        }
        Ok(())
    }

    /// Sends the rows queued so far to the store.
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_ROWS));
        // The receiver is gone only when staging failed, which the caller reports.
        if self.sender.blocking_send(batch).is_err() {
            bail!("the store stopped taking rows");
        }
        Ok(())
    }
}
