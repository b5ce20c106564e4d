//! The parts that `beacon import` and `beacon export` share: the options that choose the store, the
//! partner and the view, and the two record formats they both read or write.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use beacon_odata::model::View;
use beacon_server::auth::{DEV_PARTNER_TENANT, normalize_guid};
use beacon_store::{PartnerTenantId, Store};
use clap::Args;

use crate::{StoreChoice, open_data_dir, open_store};

/// The options of `import` and `export` that choose the rows: the store, as `serve` chooses
/// it, the partner tenant and the view.
#[derive(Debug, Args)]
pub(crate) struct BulkArgs {
    /// Folder of the SQLite database, as for `serve`. Created with owner-only permissions if
    /// absent and --database is not given.
    #[arg(long, env = "BEACON_DATA_DIR", default_value = "./beacon-data", value_name = "DIR")]
    data_dir: PathBuf,

    /// Database to use, as for `serve`: postgres://USER@HOST:PORT/DATABASE for PostgreSQL, or
    /// sqlite:PATH or a file path for SQLite. [default: DIR/beacon.sqlite3]
    #[arg(long, env = "BEACON_DATABASE_URL", value_name = "URL")]
    database: Option<String>,

    /// PEM file of CA certificates that PostgreSQL server certificates may be signed by, as
    /// for `serve`.
    #[arg(long, env = "BEACON_DATABASE_CA_FILE", value_name = "PATH")]
    database_ca_file: Option<PathBuf>,

    /// TOML file of settings, read as `serve` reads it, for the options shared with `serve`
    /// (the database). [default: DIR/beacon.toml, when it exists]
    #[arg(long, env = "BEACON_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    /// Partner tenant id (a GUID) whose rows are read or written, the `tid` of its tokens.
    #[arg(long, default_value = DEV_PARTNER_TENANT, value_name = "GUID")]
    tenant: String,

    /// Property names to read and write: graph (tenantId, tenantDisplayName, …) or seed
    /// (organizationId, organizationDisplayName, …). The view's create rules apply to
    /// imported rows: seed requires every property but id.
    #[arg(long, value_enum, default_value = "graph", value_name = "VIEW")]
    view: ViewName,
}

impl BulkArgs {
    /// Returns the partner tenant, normalized as tokens' `tid` is.
    pub(crate) fn partner(&self) -> anyhow::Result<PartnerTenantId> {
        match normalize_guid(&self.tenant) {
            Some(guid) => Ok(PartnerTenantId::new(guid)),
            None => bail!("--tenant '{}' is not a GUID such as {DEV_PARTNER_TENANT}", self.tenant),
        }
    }

    /// Returns the view chosen with --view.
    pub(crate) fn view(&self) -> View {
        match self.view {
            ViewName::Graph => View::Graph,
            ViewName::Seed => View::Seed,
        }
    }

    /// Opens the store for an export, which reads an existing store only, so that a mistyped
    /// folder or file gives an error rather than an empty export.
    pub(crate) async fn open_existing_store(&self) -> anyhow::Result<Arc<dyn Store>> {
        let database = crate::parse_database(self.database.as_deref(), &self.data_dir)
            .map_err(anyhow::Error::msg)?;
        if let crate::Database::Sqlite(path) = &database
            && !path.is_file()
        {
            anyhow::bail!(
                "the database {} does not exist; check --data-dir or --database",
                path.display()
            );
        }
        self.open_store().await
    }

    /// Opens the store, creating the data folder first when the SQLite file goes there.
    pub(crate) async fn open_store(&self) -> anyhow::Result<Arc<dyn Store>> {
        if self.database.is_none() {
            open_data_dir(&self.data_dir)?;
        }
        let choice = StoreChoice {
            database: self.database.as_deref(),
            ca_file: self.database_ca_file.as_deref(),
            // An import or an export uses one connection at a time, and a spare.
            pool_size: 2,
            readers: 1,
            max_page_count: None,
            upgrade: false,
        };
        open_store(&choice, &self.data_dir).await
    }
}

/// The value of --view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ViewName {
    /// Graph's names, as at /tenantRelationships/managedTenants/aggregatedPolicyCompliances.
    Graph,
    /// The older names, as at /aggregatedPolicyCompliances.
    Seed,
}
