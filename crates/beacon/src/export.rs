//! `beacon export`: writes a partner's rows as NDJSON or CSV, in key order.
//!
//! The rows are read a page at a time, each page starting after the last key of the one
//! before (keyset paging through [`Store::list`]), so memory stays the same however many rows
//! there are. `--filter` goes through the same parser, binder and SQL compiler as `$filter`.
//! Pages are separate reads, so a row written while the export runs may or may not be in it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use beacon_odata::bind;
use beacon_odata::entity::{EntityDocument, Selection, Value, WriteOptions};
use beacon_odata::media::{JsonFormat, Metadata};
use beacon_odata::model::{Property, View};
use beacon_odata::query::QueryOptions;
use beacon_store::{ListQuery, StoredEntity};
use clap::Args;

use crate::bulk::BulkArgs;
use crate::csv::write_field;

/// The number of rows read from the store at a time.
const PAGE_ROWS: usize = 2_000;

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    bulk: BulkArgs,

    /// Output format: ndjson (one JSON object a line) or csv (a header of property names,
    /// then one row a line; an empty field is null and "" the empty string).
    #[arg(long, value_enum, default_value = "ndjson", value_name = "FORMAT")]
    format: ExportFormat,

    /// Export only the rows for which this $filter expression is true, such as
    /// "numberOfErrorDevices gt 0".
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,

    /// File to write. [default: standard output]
    #[arg(value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    /// One JSON object a line.
    Ndjson,
    /// Comma-separated values with a header.
    Csv,
}

/// Runs `beacon export`.
pub(crate) fn run(args: ExportArgs) -> anyhow::Result<()> {
    crate::init_logging(crate::LogFormat::Text);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match runtime.block_on(export(args)) {
        // A reader that stops early, such as `head`, is not an error.
        Err(error) if is_broken_pipe(&error) => Ok(()),
        other => other,
    }
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let partner = args.bulk.partner()?;
    let view = args.bulk.view();
    let options = QueryOptions { filter: args.filter.clone(), ..QueryOptions::default() };
    let filter = match options.bind(view, bind::now_ticks()) {
        Ok(bound) => bound.filter,
        Err(error) => bail!("--filter is invalid: {error}"),
    };

    // The store opens before the output file is created, so that an export from a store that
    // cannot be opened leaves an existing output file as it was.
    let store = args.bulk.open_existing_store().await?;
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(256 * 1024, out);
    if args.format == ExportFormat::Csv {
        write_csv_header(&mut out, view)?;
    }

    let mut query = ListQuery { filter, limit: PAGE_ROWS, ..ListQuery::default() };
    let mut rows = 0_u64;
    loop {
        let page = store.list(&partner, query.clone()).await.context("cannot read the rows")?;
        for listed in &page {
            match args.format {
                ExportFormat::Ndjson => write_ndjson(&mut out, view, &listed.stored)?,
                ExportFormat::Csv => write_csv(&mut out, &listed.stored)?,
            }
        }
        rows += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == PAGE_ROWS => query.after = Some(last.cursor.clone()),
            _ => break,
        }
    }
    out.flush().context("cannot write the rows")?;
    store.close().await;
    tracing::info!(rows, partner = %partner, view = %view, "export finished");
    Ok(())
}

/// Writes one row as the JSON object of a Graph response without control information.
fn write_ndjson(out: &mut impl Write, view: View, stored: &StoredEntity) -> anyhow::Result<()> {
    let document = EntityDocument {
        context: "",
        service_root: "",
        view,
        entity: stored,
        options: WriteOptions {
            format: JsonFormat { int64_as_string: false, metadata: Metadata::None },
            selection: Selection::ALL,
        },
    };
    serde_json::to_writer(&mut *out, &document)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn write_csv_header(out: &mut impl Write, view: View) -> io::Result<()> {
    for (i, property) in Property::ALL.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_field(out, Some(property.name(view)))?;
    }
    out.write_all(b"\r\n")
}

fn write_csv(out: &mut impl Write, stored: &StoredEntity) -> io::Result<()> {
    let entity = &stored.entity;
    write_field(out, Some(&entity.id))?;
    for value in &entity.fields {
        out.write_all(b",")?;
        match value {
            None => write_field(out, None)?,
            Some(Value::String(text)) => write_field(out, Some(text))?,
            Some(Value::Int64(number)) => write!(out, "{number}")?,
            Some(Value::DateTimeOffset(instant)) => write!(out, "{instant}")?,
        }
    }
    out.write_all(b"\r\n")
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                .is_some_and(|kind| kind == io::ErrorKind::BrokenPipe)
    })
}
