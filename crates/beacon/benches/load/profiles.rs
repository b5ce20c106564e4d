//! The load profiles: what each one requests, and a check of one response of each before it
//! is timed.
//!
//! Every read profile reads the rows of the development partner that the data set loader
//! wrote, through the Graph view's collection. `post` creates rows for a second partner, so
//! the rows that the read profiles see stay exactly those loaded, however many `post` adds.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use beacon_server::auth::{DEV_PARTNER_TENANT, READ_PERMISSION, READ_WRITE_PERMISSION};
use beacon_store::sql::{Dialect, Sqlite, TABLE};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::dataset;
use crate::driver::RequestSet;
use crate::process::{ServerProcess, mint_token};

/// The Graph view's collection path.
pub const COLLECTION: &str = "/beta/tenantRelationships/managedTenants/aggregatedPolicyCompliances";

/// The partner tenant that `post` creates rows for; it has no loaded rows.
pub const WRITE_PARTNER: &str = "5e0a2c7b-3d14-4f6a-8b2e-9c1d0f4a7e63";

/// How many rows of each data set `bykey` reads, spread evenly over the key order.
const BYKEY_SAMPLE: usize = 10_000;

/// The platform of the `count` filter: 7 of the 50 policies, about 14% of the rows.
const COUNT_PLATFORM: &str = "windows10AndLater";

/// The `$apply` of `apply`: one group per platform with the sums of the three counters.
const APPLY: &str = "groupby((compliancePolicyPlatform),aggregate(\
    numberOfCompliantDevices with sum as compliant,\
    numberOfNonCompliantDevices with sum as nonCompliant,\
    numberOfErrorDevices with sum as errors))";

/// The sort of `page1` and `deep`.
const ORDER: &str = "numberOfNonCompliantDevices";

/// Characters left as they are in a query option value: RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One kind of request that the benchmark times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `POST` of a realistic entity, which returns `201` once the row is durable.
    Post,
    /// `GET` of one entity by its key.
    ByKey,
    /// `$filter=tenantId eq '…'&$top=50`; each tenant has 1,000 rows.
    List,
    /// `/$count` with a filter on one platform, which matches about 14% of the rows.
    Count,
    /// `$apply` grouping every row by platform, with three sums.
    Apply,
    /// The first 100-row page of the listing sorted by a counter.
    FirstPage,
    /// A deep page of the same listing, resumed with its `$skiptoken`.
    DeepPage,
}

impl Profile {
    pub const ALL: [Profile; 7] = [
        Profile::Post,
        Profile::ByKey,
        Profile::List,
        Profile::Count,
        Profile::Apply,
        Profile::FirstPage,
        Profile::DeepPage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Post => "post",
            Profile::ByKey => "bykey",
            Profile::List => "list",
            Profile::Count => "count",
            Profile::Apply => "apply",
            Profile::FirstPage => "page1",
            Profile::DeepPage => "deep",
        }
    }

    /// Returns the stored rows at which the request-rate target applies.
    pub fn target_rows(self) -> usize {
        match self {
            Profile::Post | Profile::ByKey => 10_000,
            _ => 100_000,
        }
    }

    /// Returns the smallest ratio of requests per second to the baseline's that meets the
    /// target, where the profile has one.
    pub fn rate_target(self) -> Option<f64> {
        match self {
            Profile::ByKey => Some(0.6),
            Profile::Post | Profile::List => Some(0.3),
            Profile::Count | Profile::Apply => Some(0.1),
            Profile::FirstPage | Profile::DeepPage => None,
        }
    }
}

/// The shape of a loaded data set that the profiles need.
#[derive(Clone, Debug)]
pub struct Facts {
    pub rows: usize,
    pub tenants: usize,
    /// Ids spread evenly over the key order, at most [`BYKEY_SAMPLE`].
    pub sample_ids: Vec<String>,
    /// The number of rows on [`COUNT_PLATFORM`].
    pub platform_rows: u64,
}

impl Facts {
    /// Reads the facts of the data set in `database`, before a server opens it.
    pub fn read(database: &Path, rows: usize, tenants: usize) -> anyhow::Result<Facts> {
        let connection = rusqlite::Connection::open(database)?;
        let stride = (rows / BYKEY_SAMPLE).max(1);
        let partner = Sqlite.partner_condition("?1");
        let mut statement =
            connection.prepare(&format!("SELECT id FROM {TABLE} WHERE {partner} ORDER BY id"))?;
        let ids = statement.query_map([DEV_PARTNER_TENANT], |row| row.get::<_, String>(0))?;
        let mut sample_ids = Vec::with_capacity(BYKEY_SAMPLE);
        for (index, id) in ids.enumerate() {
            if index % stride == 0 {
                sample_ids.push(id?);
            }
        }
        let platform_rows: i64 = connection.query_row(
            &format!(
                "SELECT COUNT(*) FROM {TABLE} WHERE {partner} AND compliance_policy_platform = ?2"
            ),
            [DEV_PARTNER_TENANT, COUNT_PLATFORM],
            |row| row.get(0),
        )?;
        Ok(Facts { rows, tenants, sample_ids, platform_rows: platform_rows as u64 })
    }

    /// Returns the page number of `deep`: page 5,000 of 100 rows, or the middle page of a
    /// smaller data set.
    pub fn deep_page(&self) -> usize {
        5_000.min(self.rows / 100 / 2).max(2)
    }
}

/// Builds the requests of `profiles` for the server `server` on `data_dir`, and checks one
/// response of each.
pub async fn prepare(
    server: &ServerProcess,
    data_dir: &Path,
    facts: &Facts,
    profiles: &[Profile],
) -> anyhow::Result<Vec<(Profile, RequestSet)>> {
    let read_token = mint_token(data_dir, DEV_PARTNER_TENANT, READ_PERMISSION)?;
    let write_token = mint_token(data_dir, WRITE_PARTNER, READ_WRITE_PERMISSION)?;
    let client = Client::new(server)?;
    let mut sets = Vec::new();
    for &profile in profiles {
        let token = if profile == Profile::Post { &write_token } else { &read_token };
        let set = request_set(profile, &client, token, facts)
            .await
            .with_context(|| format!("preparing {} on {}", profile.name(), server.name))?;
        sets.push((profile, set));
    }
    Ok(sets)
}

/// Builds one profile's requests and checks the response to its first one.
async fn request_set(
    profile: Profile,
    client: &Client,
    token: &str,
    facts: &Facts,
) -> anyhow::Result<RequestSet> {
    let get = |targets: Vec<String>| RequestSet {
        method: Method::GET,
        targets: Arc::new(targets),
        token: token.to_owned(),
        body: None,
        expected: StatusCode::OK,
    };
    let set = match profile {
        Profile::Post => {
            let body = Bytes::from(serde_json::to_vec(&create_body())?);
            let created = client.post(COLLECTION, token, body.clone()).await?;
            ensure!(created["id"].is_string(), "the created entity has no id: {created}");
            RequestSet {
                method: Method::POST,
                targets: Arc::new(vec![COLLECTION.to_owned()]),
                token: token.to_owned(),
                body: Some(body),
                expected: StatusCode::CREATED,
            }
        }
        Profile::ByKey => {
            // A fixed stride coprime with the sample size visits every sampled id in an order
            // that jumps around the key order, as independent clients would.
            let count = facts.sample_ids.len();
            let stride = (1..).map(|k| 7_919 * k).find(|s| gcd(*s, count) == 1).unwrap_or(1);
            let targets: Vec<String> = (0..count)
                .map(|i| format!("{COLLECTION}/{}", facts.sample_ids[i * stride % count]))
                .collect();
            let entity = client.get_json(&targets[0], token).await?;
            ensure!(entity["id"] == facts.sample_ids[0].as_str(), "wrong entity: {entity}");
            get(targets)
        }
        Profile::List => {
            let targets: Vec<String> = (0..facts.tenants)
                .map(|tenant| {
                    let filter = format!("tenantId eq '{}'", dataset::tenant_id(tenant));
                    format!("{COLLECTION}?$filter={}&$top=50", encode(&filter))
                })
                .collect();
            let page = client.get_json(&targets[0], token).await?;
            let rows = page["value"].as_array().context("the page has no value array")?;
            ensure!(rows.len() == 50, "the list page has {} rows, not 50", rows.len());
            let tenant = dataset::tenant_id(0);
            ensure!(
                rows.iter().all(|row| row["tenantId"] == tenant.as_str()),
                "a row of another tenant"
            );
            get(targets)
        }
        Profile::Count => {
            let filter = format!("compliancePolicyPlatform eq '{COUNT_PLATFORM}'");
            let target = format!("{COLLECTION}/$count?$filter={}", encode(&filter));
            let text = client.get_text(&target, token).await?;
            let counted: u64 = text.trim().parse().with_context(|| format!("count {text:?}"))?;
            ensure!(
                counted == facts.platform_rows,
                "counted {counted}, not {}",
                facts.platform_rows
            );
            get(vec![target])
        }
        Profile::Apply => {
            let target = format!("{COLLECTION}?$apply={}", encode(APPLY));
            let groups = client.get_json(&target, token).await?;
            let groups = groups["value"].as_array().context("the result has no value array")?;
            ensure!(groups.len() == dataset::PLATFORMS.len(), "{} groups", groups.len());
            get(vec![target])
        }
        Profile::FirstPage => {
            let target = format!("{COLLECTION}?$orderby={ORDER}");
            let page = client.get_json(&target, token).await?;
            check_full_page(&page)?;
            get(vec![target])
        }
        Profile::DeepPage => {
            let target = walk_to_page(client, token, facts.deep_page()).await?;
            let page = client.get_json(&target, token).await?;
            check_full_page(&page)?;
            get(vec![target])
        }
    };
    Ok(set)
}

/// Follows `@odata.nextLink` to page `page` of 100 rows of the sorted listing and returns
/// that page's path and query. The walk requests 1,000-row pages while it can, since the
/// skiptoken records the rows served, not the page size.
async fn walk_to_page(client: &Client, token: &str, page: usize) -> anyhow::Result<String> {
    let mut target = format!("{COLLECTION}?$orderby={ORDER}");
    let mut rows_left = (page - 1) * 100;
    while rows_left > 0 {
        let size = if rows_left >= 1_000 { 1_000 } else { 100 };
        let response = client.get_json_sized(&target, token, size).await?;
        let link = response["@odata.nextLink"].as_str().context("the walk ended early")?;
        target = path_and_query(link)?;
        rows_left -= size;
    }
    Ok(target)
}

fn check_full_page(page: &Value) -> anyhow::Result<()> {
    let rows = page["value"].as_array().context("the page has no value array")?;
    ensure!(rows.len() == 100, "the page has {} rows, not 100", rows.len());
    ensure!(page["@odata.nextLink"].is_string(), "the page has no next link");
    Ok(())
}

/// Returns the create body of `post`: a realistic entity in the Graph view's names, with the
/// key left for the server to choose.
fn create_body() -> Value {
    json!({
        "@odata.type": "#microsoft.graph.managedTenants.aggregatedPolicyCompliance",
        "tenantId": "4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a",
        "tenantDisplayName": "Contoso Ltd",
        "compliancePolicyId": "0c4bd1d4-1d3f-4b86-8b93-3f0a5d0e5c21",
        "compliancePolicyName": "Windows 10 baseline",
        "compliancePolicyType": "deviceCompliancePolicy",
        "compliancePolicyPlatform": "windows10AndLater",
        "numberOfCompliantDevices": 120,
        "numberOfNonCompliantDevices": 7,
        "numberOfErrorDevices": 1,
        "policyModifiedDateTime": "2024-02-12T09:15:00Z",
        "lastRefreshedDateTime": "2024-03-01T07:30:00.1234567Z"
    })
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Percent-encodes a query option value.
fn encode(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Returns the path and query of an absolute URL.
fn path_and_query(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").context("the next link is not an http URL")?;
    let at = rest.find('/').context("the next link has no path")?;
    Ok(rest[at..].to_owned())
}

/// The untimed HTTP client that prepares and checks the profiles.
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(server: &ServerProcess) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        Ok(Client { http, base: format!("http://{}", server.address) })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Bytes> {
        let response = request.send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!("the server returned {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body)
    }

    async fn get_text(&self, target: &str, token: &str) -> anyhow::Result<String> {
        let request = self.http.get(format!("{}{target}", self.base)).bearer_auth(token);
        Ok(String::from_utf8(self.send(request).await?.to_vec())?)
    }

    async fn get_json(&self, target: &str, token: &str) -> anyhow::Result<Value> {
        let request = self.http.get(format!("{}{target}", self.base)).bearer_auth(token);
        Ok(serde_json::from_slice(&self.send(request).await?)?)
    }

    async fn get_json_sized(
        &self,
        target: &str,
        token: &str,
        size: usize,
    ) -> anyhow::Result<Value> {
        let request = self
            .http
            .get(format!("{}{target}", self.base))
            .bearer_auth(token)
            .header("Prefer", format!("odata.maxpagesize={size}"));
        Ok(serde_json::from_slice(&self.send(request).await?)?)
    }

    /// Returns the raw body of `GET target`, which becomes the baseline's body.
    pub async fn get_bytes(&self, target: &str, token: &str) -> anyhow::Result<Bytes> {
        let request = self.http.get(format!("{}{target}", self.base)).bearer_auth(token);
        self.send(request).await
    }

    async fn post(&self, target: &str, token: &str, body: Bytes) -> anyhow::Result<Value> {
        let request = self
            .http
            .post(format!("{}{target}", self.base))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(body);
        Ok(serde_json::from_slice(&self.send(request).await?)?)
    }
}

/// Returns the body of one single-entity response of `server`, which the baseline then sends
/// as its own response.
pub async fn entity_body(
    server: &ServerProcess,
    data_dir: &Path,
    facts: &Facts,
) -> anyhow::Result<Bytes> {
    let token = mint_token(data_dir, DEV_PARTNER_TENANT, READ_PERMISSION)?;
    let id = facts.sample_ids.first().context("the data set has no rows")?;
    Client::new(server)?.get_bytes(&format!("{COLLECTION}/{id}"), &token).await
}
