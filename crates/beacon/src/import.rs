//! `beacon import`: loads rows from NDJSON, CSV or Graph list responses straight into the
//! store, all or nothing.
//!
//! Every record goes through the body rules of a `POST` to the chosen view
//! ([`body::decode`], then [`EntityInput::into_create`]), within the same body size limit, and
//! a record without an `id` gets a new GUID as it would there. A reader thread parses and
//! checks the records and hands batches to the store's [`Import`], which stages them out of
//! sight; the commit at the end makes them visible together. A bad record stops the import
//! before the commit, so nothing is stored, unless `--skip-invalid` sends it to a rejects file.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use beacon_odata::body::{self, BodyError, EntityInput, ReadOptions};
use beacon_odata::entity::Entity;
use beacon_odata::model::View;
use beacon_server::MAX_BODY_BYTES;
use beacon_store::{ImportOutcome, KeyConflict, OnConflict};
use clap::Args;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::bulk::BulkArgs;
use crate::csv::{CsvReader, Record};
use crate::progress::Progress;

/// The number of rows handed to the store at a time.
const BATCH_ROWS: usize = 10_000;

/// The number of batches that may wait for the store, which bounds the reader's lead.
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

    let store = args.bulk.open_store().await?;
    let on_conflict = OnConflict::from(args.on_conflict);
    let mut import =
        store.begin_import(&partner, on_conflict).await.context("cannot start the import")?;
    tracing::info!(partner = %partner, view = %view, on_conflict = %on_conflict, "importing");

    // The reader thread parses and checks; this task stages what it sends.
    let (sender, mut receiver) = mpsc::channel(BATCHES_IN_FLIGHT);
    let reader = tokio::task::spawn_blocking(move || read_source(source, view, rejects, sender));
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
    let read = reader.await.context("the reader thread failed")?;
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

/// The report of the reader thread once the input is read.
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
    /// The record as given.
    input: String,
}

/// Reads and checks every record, sends the valid ones on in batches, and handles the
/// invalid ones: into the rejects file, or as the error that stops the import.
struct Reader {
    view: View,
    rejects: Option<Rejects>,
    sender: mpsc::Sender<Vec<(u64, Entity)>>,
    batch: Vec<(u64, Entity)>,
    rows: u64,
    rejected: u64,
    progress: Progress,
    /// Bytes of the input read so far.
    bytes: Arc<AtomicU64>,
    /// JSON text of a CSV record, reused from record to record.
    scratch: Vec<u8>,
}

fn read_source(
    source: Source,
    view: View,
    rejects: Option<Rejects>,
    sender: mpsc::Sender<Vec<(u64, Entity)>>,
) -> anyhow::Result<ReadSummary> {
    let progress = Progress::start(source.total_bytes());
    let mut reader = Reader {
        view,
        rejects,
        sender,
        batch: Vec::with_capacity(BATCH_ROWS),
        rows: 0,
        rejected: 0,
        progress,
        bytes: Arc::new(AtomicU64::new(0)),
        scratch: Vec::new(),
    };
    let mut origins = Origins::default();
    let outcome = match source {
        Source::Lines { format, path } => {
            origins.files.push((1, label(&path)));
            let input = reader.open(&path)?;
            match format {
                ImportFormat::Csv => reader.read_csv(input, &label(&path)),
                _ => reader.read_ndjson(input, &label(&path)),
            }
        }
        Source::Pages { paths } => {
            origins.records = true;
            let mut next = 1;
            let mut outcome = Ok(());
            for path in &paths {
                origins.files.push((next, label(path)));
                outcome = reader.read_pages(path, next).map(|records| next += records);
                if outcome.is_err() {
                    break;
                }
            }
            outcome
        }
    };
    reader.progress.finish();
    outcome?;
    reader.flush()?;
    if let Some(rejects) = reader.rejects.take() {
        rejects.finish()?;
    }
    Ok(ReadSummary {
        rows: reader.rows,
        rejected: reader.rejected,
        origins,
        progress: reader.progress,
    })
}

impl Reader {
    /// Opens a file, or standard input for `None`, counting the bytes read.
    fn open(&self, path: &Option<PathBuf>) -> anyhow::Result<BufReader<Box<dyn Read + Send>>> {
        let input: Box<dyn Read + Send> = match path {
            Some(path) => Box::new(
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
            ),
            None => Box::new(io::stdin()),
        };
        let counting = CountingReader { input, bytes: Arc::clone(&self.bytes) };
        Ok(BufReader::with_capacity(256 * 1024, Box::new(counting)))
    }

    /// Reads one JSON object a line; blank lines are skipped but counted.
    fn read_ndjson(&mut self, mut input: impl BufRead, file: &str) -> anyhow::Result<()> {
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line).with_context(|| format!("cannot read {file}"))?
                == 0
            {
                return Ok(());
            }
            number += 1;
            let text = trim_line_end(&line);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let checked = check(self.view, text, ReadOptions::default());
            self.accept(checked, number, file, "line", || {
                String::from_utf8_lossy(text).into_owned()
            })?;
        }
    }

    /// Reads a header of property names, then one row a record.
    fn read_csv(&mut self, input: impl BufRead, file: &str) -> anyhow::Result<()> {
        let mut records = CsvReader::new(input);
        let header = match records.next_record().with_context(|| format!("cannot read {file}"))? {
            Some(header) => header,
            None => return Ok(()),
        };
        let names = self.check_header(&header, file)?;
        // Each name as a JSON string and a colon, written once rather than once a record.
        let names: Vec<Vec<u8>> = names
            .iter()
            .map(|name| {
                let mut member = serde_json::to_vec(name)?;
                member.push(b':');
                Ok(member)
            })
            .collect::<Result<_, serde_json::Error>>()?;
        while let Some(record) =
            records.next_record().with_context(|| format!("cannot read {file}"))?
        {
            let checked = self.check_csv_record(&names, &record);
            let line = record.line;
            self.accept(checked, line, file, "line", || record.raw.clone())?;
        }
        Ok(())
    }

    /// Checks that each header field names a property of the view, once.
    fn check_header(&self, header: &Record, file: &str) -> anyhow::Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        for field in &header.fields {
            let name = field.text.clone();
            if self.view.property(&name).is_none() {
                let error = BodyError::UnknownProperty { name, view: self.view };
                bail!("{file} line {}: the CSV header is invalid: {error}", header.line);
            }
            if names.contains(&name) {
                bail!("{file} line {}: the CSV header names '{name}' twice", header.line);
            }
            names.push(name);
        }
        Ok(names)
    }

    /// Writes a CSV record as the JSON object a `POST` would carry, with every non-null
    /// value as a JSON string, and checks it as such, Int64 strings included.
    fn check_csv_record(&mut self, names: &[Vec<u8>], record: &Record) -> Result<Entity, Fault> {
        if record.fields.len() != names.len() {
            return Err(Fault {
                property: None,
                reason: format!(
                    "The row has {} fields, but the header has {}.",
                    record.fields.len(),
                    names.len()
                ),
            });
        }
        let json = &mut self.scratch;
        json.clear();
        json.push(b'{');
        for (i, (name, field)) in names.iter().zip(&record.fields).enumerate() {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(name);
            if field.text.is_empty() && !field.quoted {
                json.extend_from_slice(b"null");
            } else {
                serde_json::to_writer(&mut *json, &field.text).map_err(Fault::internal)?;
            }
        }
        json.push(b'}');
        check(self.view, json, ReadOptions { int64_as_string: true })
    }

    /// Reads the Graph list responses of one file, or of standard input, numbering their
    /// records from `first`. Returns the number of records read.
    fn read_pages(&mut self, path: &Option<PathBuf>, first: u64) -> anyhow::Result<u64> {
        #[derive(Deserialize)]
        struct Page<'a> {
            #[serde(borrow)]
            value: Vec<&'a RawValue>,
        }

        let file = label(path);
        let mut text = Vec::new();
        self.open(path)?.read_to_end(&mut text).with_context(|| format!("cannot read {file}"))?;
        let mut position = first;
        for (index, page) in
            serde_json::Deserializer::from_slice(&text).into_iter::<Page<'_>>().enumerate()
        {
            let page = page.with_context(|| {
                format!(
                    "{file}: page {} is not a Graph list response such as {{\"value\":[…]}}",
                    index + 1
                )
            })?;
            for record in page.value {
                let checked = check(self.view, record.get().as_bytes(), ReadOptions::default());
                let number = position - first + 1;
                self.accept_at(checked, position, number, &file, "record", || {
                    record.get().to_owned()
                })?;
                position += 1;
            }
        }
        Ok(position - first)
    }

    fn accept(
        &mut self,
        checked: Result<Entity, Fault>,
        number: u64,
        file: &str,
        unit: &str,
        input: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        self.accept_at(checked, number, number, file, unit, input)
    }

    /// Queues a valid row at `position`, or handles an invalid one, named by `number` in
    /// `file`.
    fn accept_at(
        &mut self,
        checked: Result<Entity, Fault>,
        position: u64,
        number: u64,
        file: &str,
        unit: &str,
        input: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        self.rows += 1;
        match checked {
            Ok(entity) => {
                self.batch.push((position, entity));
                if self.batch.len() >= BATCH_ROWS {
                    self.flush()?;
                }
            }
            Err(fault) => {
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
                    input: input(),
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

/// The reason a record was rejected.
#[derive(Debug)]
struct Fault {
    property: Option<String>,
    reason: String,
}

impl Fault {
    fn internal(error: serde_json::Error) -> Fault {
        Fault { property: None, reason: format!("The record could not be converted: {error}.") }
    }
}

impl From<BodyError> for Fault {
    fn from(error: BodyError) -> Fault {
        let property = match &error {
            BodyError::UnknownProperty { name, .. } => Some(name.clone()),
            BodyError::InvalidValue { property, .. } => Some((*property).to_owned()),
            BodyError::RequiredProperties { missing, null } => {
                missing.first().or(null.first()).map(|name| (*name).to_owned())
            }
            BodyError::WrongEntityType { .. } => Some("@odata.type".to_owned()),
            BodyError::Json(_) | BodyError::NotAnObject(_) => None,
        };
        Fault { property, reason: error.to_string() }
    }
}

/// Applies the rules of a `POST` to `view` to one record: the body size limit, the body's
/// JSON form and values, the view's required properties, and a new GUID for a missing key.
fn check(view: View, record: &[u8], options: ReadOptions) -> Result<Entity, Fault> {
    if record.len() > MAX_BODY_BYTES {
        return Err(Fault {
            property: None,
            reason: format!(
                "The record is {} bytes long, and a request body may be at most {MAX_BODY_BYTES}.",
                record.len()
            ),
        });
    }
    let input: EntityInput = body::decode(view, record, options)?;
    let (id, fields) = input.into_create(view)?;
    let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Ok(Entity { id, fields })
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Counts the bytes read through it, for the progress report.
struct CountingReader {
    input: Box<dyn Read + Send>,
    bytes: Arc<AtomicU64>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.input.read(buf)?;
        self.bytes.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}
