// The compliance dashboard of Beacon. It reads the partner's data through the public OData API
// with the token the user pastes, and lets the server aggregate it with $apply.
//
// Rules that keep the page safe and exact:
// - Values from the API reach the page only as text nodes and attribute values, never as
//   markup to parse, so a tenant name that contains HTML stays text.
// - Int64 values are requested with IEEE754Compatible=true, which returns them as strings, and
//   are kept as BigInt, so counts above 2^53 stay exact.
// - The token is kept in sessionStorage, so it is gone when the tab closes and other tabs do
//   not see it.
"use strict";

(() => {
  const TOKEN_KEY = "beacon.dashboard.token";
  const COLLECTION_PATH = "beta/tenantRelationships/managedTenants/aggregatedPolicyCompliances";
  const CONTAINER_PATH = "beta/tenantRelationships/managedTenants";
  const ACCEPT = "application/json;odata.metadata=minimal;IEEE754Compatible=true";
  const STALE_AFTER_MS = 24 * 60 * 60 * 1000;
  // Pages are as large as Beacon allows, because fewer pages mean fewer requests against the
  // rate limit. `?pageSize=N` in the page's URL requests smaller pages, which lets a test make
  // the page follow next links on a small dataset.
  const PAGE_SIZE = pageSizeOf(new URLSearchParams(window.location.search).get("pageSize"));
  // A bound on the pages of one query, so that a server that keeps sending next links cannot
  // keep the page loading forever. At the default page size it allows a million groups.
  const MAX_PAGES = 1000;
  const TOP_POLICIES = 10;

  // `undefined` picks the browser's locale, for digit grouping and date formats.
  const numberFormat = new Intl.NumberFormat(undefined);
  const percentFormat = new Intl.NumberFormat(undefined, {
    style: "percent",
    minimumFractionDigits: 1,
    maximumFractionDigits: 1,
  });
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  const byId = (id) => document.getElementById(id);

  function pageSizeOf(text) {
    const size = Number.parseInt(text ?? "", 10);
    return Number.isInteger(size) && size >= 1 && size <= 1000 ? size : 1000;
  }

  const state = {
    token: null,
    tenants: [],
    sort: { key: "share", descending: false },
    // Increases with every load, so that a slower, older load cannot overwrite a newer one.
    generation: 0,
  };

  // An error that the API returned, or a failure to reach it (status 0).
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // --- Requests ---------------------------------------------------------------------------

  function apiUrl(path) {
    return new URL(path, document.baseURI);
  }

  async function getJson(url) {
    let response;
    try {
      response = await fetch(url, {
        headers: {
          Authorization: `Bearer ${state.token}`,
          Accept: ACCEPT,
          Prefer: `odata.maxpagesize=${PAGE_SIZE}`,
        },
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      throw new ApiError(0, "NetworkError", `Beacon could not be reached (${error.message}).`);
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      const detail = body && body.error ? body.error : {};
      const message = detail.message || `The server returned ${response.status} ${response.statusText}.`;
      throw new ApiError(response.status, detail.code || "", message);
    }
    if (body === null) {
      throw new ApiError(response.status, "InvalidResponse", "The server's response is not JSON.");
    }
    return body;
  }

  // Runs a query on the collection and follows @odata.nextLink until the last page.
  async function queryAll(options) {
    const url = apiUrl(COLLECTION_PATH);
    for (const [name, value] of Object.entries(options)) {
      url.searchParams.set(name, value);
    }
    const rows = [];
    for (let page = 1; page <= MAX_PAGES; page++) {
      const body = await getJson(url);
      rows.push(...body.value);
      const next = body["@odata.nextLink"];
      if (!next) {
        return rows;
      }
      // The next link repeats the query and adds a $skiptoken. Only its query is taken, so that
      // a --public-url naming another origin than the page's still reaches this server.
      url.search = new URL(next, url).search;
    }
    throw new Error(`the result has more than ${MAX_PAGES} pages.`);
  }

  // Writes a string literal for $filter and $apply, with quotes doubled as OData escapes them.
  function literal(value) {
    return value === null ? "null" : `'${value.replace(/'/g, "''")}'`;
  }

  // Returns the filter() transformation of the chosen tenant and platform, with its trailing
  // `/`, or "" when no filter is chosen.
  function filterStep(filter) {
    const conditions = [];
    if (filter.tenant !== undefined) {
      conditions.push(`tenantId eq ${literal(filter.tenant)}`);
    }
    if (filter.platform !== undefined) {
      conditions.push(`compliancePolicyPlatform eq ${literal(filter.platform)}`);
    }
    return conditions.length === 0 ? "" : `filter(${conditions.join(" and ")})/`;
  }

  // NOTE: Beacon sums Int64 exactly and rejects a sum past 2^63 - 1 with 400, so a tenant or a
  // platform whose devices add up past that makes the whole load fail with that message.
  function fetchTenants(filter) {
    const apply =
      `${filterStep(filter)}groupby((tenantId),aggregate(` +
      "tenantDisplayName with max as displayName," +
      "numberOfCompliantDevices with sum as compliant," +
      "numberOfNonCompliantDevices with sum as nonCompliant," +
      "numberOfErrorDevices with sum as errors," +
      "lastRefreshedDateTime with min as oldestRefresh))";
    return queryAll({ $apply: apply });
  }

  function fetchPlatforms(filter) {
    const apply =
      `${filterStep(filter)}groupby((compliancePolicyPlatform),aggregate(` +
      "numberOfNonCompliantDevices with sum as nonCompliant))";
    return queryAll({ $apply: apply, $orderby: "nonCompliant desc,compliancePolicyPlatform" });
  }

  function fetchTopPolicies(filter) {
    const apply =
      `${filterStep(filter)}groupby((tenantId,compliancePolicyId),aggregate(` +
      "compliancePolicyName with max as policyName," +
      "tenantDisplayName with max as tenantName," +
      "compliancePolicyPlatform with max as platform," +
      "numberOfNonCompliantDevices with sum as nonCompliant))";
    return queryAll({
      $apply: apply,
      $filter: "nonCompliant gt 0",
      $orderby: "nonCompliant desc,policyName,tenantId,compliancePolicyId",
      $top: String(TOP_POLICIES),
    });
  }

  // --- Values -----------------------------------------------------------------------------

  function toBigInt(value) {
    return value === null || value === undefined ? 0n : BigInt(value);
  }

  // Returns the share of `part` in `total` in tenths of a percent, rounded half up, or null
  // when the total is zero.
  function shareTenths(part, total) {
    if (total === 0n) {
      return null;
    }
    return Number((part * 2000n + total) / (2n * total));
  }

  function formatShare(tenths) {
    return tenths === null ? "–" : percentFormat.format(tenths / 1000);
  }

  // Parses an OData DateTimeOffset. Beacon sends up to 7 fractional digits, and Date.parse
  // takes the ISO format with 3, so the rest are cut (they are below a millisecond).
  function parseDate(text) {
    if (typeof text !== "string") {
      return null;
    }
    const milliseconds = Date.parse(text.replace(/(\.\d{3})\d+/, "$1"));
    return Number.isNaN(milliseconds) ? null : milliseconds;
  }

  function tenantFromGroup(group, now) {
    const compliant = toBigInt(group.compliant);
    const nonCompliant = toBigInt(group.nonCompliant);
    const errors = toBigInt(group.errors);
    const total = compliant + nonCompliant + errors;
    const refreshed = parseDate(group.oldestRefresh);
    return {
      id: group.tenantId ?? null,
      name: group.displayName ?? group.tenantId ?? "(tenant without id)",
      compliant,
      nonCompliant,
      errors,
      total,
      share: shareTenths(compliant, total),
      refreshed,
      stale: refreshed === null || now - refreshed > STALE_AFTER_MS,
    };
  }

  // --- Rendering --------------------------------------------------------------------------

  // Creates an element with a class and children. Strings become text nodes.
  function element(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    for (const child of children) {
      node.append(child);
    }
    return node;
  }

  function setText(id, text) {
    byId(id).textContent = text;
  }

  // Shows a summary figure, in a smaller size when it is too long for its card.
  function setFigure(id, text) {
    setText(id, text);
    byId(id).classList.toggle("long", text.length > 9);
  }

  function setWidth(node, part, whole) {
    const percent = whole === 0n ? 0 : Number((part * 10000n) / whole) / 100;
    node.style.width = `${percent}%`;
  }

  function renderSummary(tenants) {
    let compliant = 0n;
    let nonCompliant = 0n;
    let errors = 0n;
    for (const tenant of tenants) {
      compliant += tenant.compliant;
      nonCompliant += tenant.nonCompliant;
      errors += tenant.errors;
    }
    const total = compliant + nonCompliant + errors;
    setText("overall-share", formatShare(shareTenths(compliant, total)));
    setText(
      "overall-note",
      `${numberFormat.format(compliant)} of ${numberFormat.format(total)} devices`,
    );
    setFigure("total-compliant", numberFormat.format(compliant));
    setFigure("total-non-compliant", numberFormat.format(nonCompliant));
    setFigure("total-errors", numberFormat.format(errors));
    setFigure("tenant-count", numberFormat.format(tenants.length));
    const stale = tenants.filter((tenant) => tenant.stale).length;
    setText("stale-count", stale === 0 ? "none stale" : `${numberFormat.format(stale)} stale`);
    byId("stale-count").classList.toggle("warning", stale > 0);
    setWidth(byId("stack-compliant"), compliant, total);
    setWidth(byId("stack-non-compliant"), nonCompliant, total);
    setWidth(byId("stack-errors"), errors, total);
  }

  // Compares two BigInts, numbers or strings by value.
  function compareValues(a, b) {
    if (a < b) {
      return -1;
    }
    return a > b ? 1 : 0;
  }

  // Compares values that may be null. Null ranks lowest, as in OData's ordering.
  function compareNullable(a, b) {
    if (a === null && b === null) {
      return 0;
    }
    if (a === null) {
      return -1;
    }
    if (b === null) {
      return 1;
    }
    return compareValues(a, b);
  }

  const SORT_ORDERS = {
    name: (a, b) => collator.compare(a.name, b.name),
    compliant: (a, b) => compareValues(a.compliant, b.compliant),
    nonCompliant: (a, b) => compareValues(a.nonCompliant, b.nonCompliant),
    errors: (a, b) => compareValues(a.errors, b.errors),
    share: (a, b) => compareNullable(a.share, b.share),
    refreshed: (a, b) => compareNullable(a.refreshed, b.refreshed),
  };

  function sortedTenants() {
    const compare = SORT_ORDERS[state.sort.key];
    const direction = state.sort.descending ? -1 : 1;
    // Ties fall back to the name and then the id, in ascending order, so the order is total.
    return [...state.tenants].sort(
      (a, b) =>
        direction * compare(a, b) ||
        collator.compare(a.name, b.name) ||
        compareNullable(a.id, b.id),
    );
  }

  function renderSortHeaders() {
    for (const header of document.querySelectorAll("#tenants th[data-sort]")) {
      const active = header.dataset.sort === state.sort.key;
      if (active) {
        header.setAttribute("aria-sort", state.sort.descending ? "descending" : "ascending");
      } else {
        header.removeAttribute("aria-sort");
      }
      header.querySelector(".sort-mark").textContent = active
        ? state.sort.descending
          ? "▼"
          : "▲"
        : "";
    }
  }

  // Creates a cell of the tenant table. Its label is the column's name, which narrow screens
  // show beside the value, since they lay each row out as a card without the header row.
  function tenantCell(label, className, text) {
    const cell = element("td", className, text);
    cell.dataset.label = label;
    return cell;
  }

  function renderTenants() {
    renderSortHeaders();
    const body = document.querySelector("#tenants tbody");
    const rows = sortedTenants().map((tenant) => {
      const name = element("th", "tenant-name", tenant.name);
      name.scope = "row";
      if (tenant.id !== null) {
        name.title = tenant.id;
      }
      const refreshed = tenantCell(
        "Last refresh",
        "refreshed",
        tenant.refreshed === null ? "never" : dateFormat.format(tenant.refreshed),
      );
      if (tenant.stale) {
        refreshed.append(" ", element("span", "badge stale-badge", "Stale"));
      }
      const row = element(
        "tr",
        tenant.stale ? "stale" : "",
        name,
        tenantCell("Compliant", "number", numberFormat.format(tenant.compliant)),
        tenantCell("Non-compliant", "number", numberFormat.format(tenant.nonCompliant)),
        tenantCell("Errors", "number", numberFormat.format(tenant.errors)),
        tenantCell("% compliant", "number share", formatShare(tenant.share)),
        refreshed,
      );
      row.dataset.tenantId = tenant.id ?? "";
      return row;
    });
    body.replaceChildren(...rows);
    byId("tenants-empty").hidden = rows.length > 0;
  }

  function platformLabel(platform) {
    return platform ?? "(no platform)";
  }

  function renderPlatforms(groups) {
    const values = groups.map((group) => ({
      platform: platformLabel(group.compliancePolicyPlatform),
      nonCompliant: toBigInt(group.nonCompliant),
    }));
    const max = values.reduce((largest, v) => (v.nonCompliant > largest ? v.nonCompliant : largest), 0n);
    const items = values.map((value) => {
      const fill = element("span", "bar-fill");
      setWidth(fill, value.nonCompliant, max);
      const track = element("span", "bar-track", fill);
      track.setAttribute("aria-hidden", "true");
      return element(
        "li",
        "bar",
        element("span", "bar-label", value.platform),
        track,
        element("span", "bar-value", numberFormat.format(value.nonCompliant)),
      );
    });
    byId("platforms").replaceChildren(...items);
    byId("platforms-empty").hidden = items.length > 0;
  }

  function renderPolicies(groups) {
    const rows = groups.map((group, index) => {
      // The tenant and the platform go on a second line under the policy's name, which keeps
      // the table narrow enough for a phone.
      const policy = element(
        "td",
        "policy",
        element("span", "policy-name", group.policyName ?? group.compliancePolicyId ?? "(unnamed policy)"),
        element(
          "span",
          "policy-context",
          element("span", "policy-tenant", group.tenantName ?? group.tenantId ?? "(tenant without id)"),
          element("span", "policy-platform", platformLabel(group.platform)),
        ),
      );
      return element(
        "tr",
        "",
        element("td", "number rank", numberFormat.format(index + 1)),
        policy,
        element("td", "number", numberFormat.format(toBigInt(group.nonCompliant))),
      );
    });
    document.querySelector("#policies tbody").replaceChildren(...rows);
    byId("policies-empty").hidden = rows.length > 0;
  }

  // Fills a filter's options, keeping the chosen value when it is still offered. Each option's
  // value is the JSON of what it filters on, so that null (no platform) is an option too.
  function renderOptions(select, allLabel, entries) {
    const chosen = select.value;
    const options = [new Option(allLabel, "")];
    for (const entry of entries) {
      options.push(new Option(entry.label, JSON.stringify(entry.value)));
    }
    select.replaceChildren(...options);
    select.value = options.some((option) => option.value === chosen) ? chosen : "";
  }

  function renderFilterOptions(tenantGroups, platformGroups) {
    const tenants = tenantGroups.map((group) => ({
      label: group.displayName ?? group.tenantId ?? "(tenant without id)",
      value: group.tenantId ?? null,
    }));
    // Tenants that share a name are distinguished by their id.
    const counts = new Map();
    for (const tenant of tenants) {
      counts.set(tenant.label, (counts.get(tenant.label) ?? 0) + 1);
    }
    for (const tenant of tenants) {
      if (counts.get(tenant.label) > 1 && tenant.value !== null) {
        tenant.label = `${tenant.label} (${tenant.value})`;
      }
    }
    tenants.sort((a, b) => collator.compare(a.label, b.label));
    renderOptions(byId("tenant-filter"), "All tenants", tenants);

    const platforms = platformGroups.map((group) => ({
      label: platformLabel(group.compliancePolicyPlatform),
      value: group.compliancePolicyPlatform ?? null,
    }));
    platforms.sort((a, b) => collator.compare(a.label, b.label));
    renderOptions(byId("platform-filter"), "All platforms", platforms);
  }

  function chosenFilter() {
    const filter = {};
    const tenant = byId("tenant-filter").value;
    const platform = byId("platform-filter").value;
    if (tenant !== "") {
      filter.tenant = JSON.parse(tenant);
    }
    if (platform !== "") {
      filter.platform = JSON.parse(platform);
    }
    return filter;
  }

  // --- Page states ------------------------------------------------------------------------

  function showAlert(message) {
    const alert = byId("alert");
    alert.textContent = message;
    alert.hidden = message === "";
  }

  function showSignIn(message) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    document.body.dataset.state = "signed-out";
    byId("loading").hidden = true;
    byId("dashboard").hidden = true;
    byId("session").hidden = true;
    byId("sign-in").hidden = false;
    showAlert(message);
    const input = byId("token");
    input.value = "";
    input.setAttribute("aria-invalid", message === "" ? "false" : "true");
    input.focus();
  }

  // Turns a failed load into a message that names what failed and what to do next.
  function describeFailure(error) {
    if (!(error instanceof ApiError)) {
      return `The dashboard failed: ${error.message}`;
    }
    switch (error.status) {
      case 0:
        return `${error.message} Check that the server is running, then press Refresh.`;
      case 401:
        return `Beacon rejected the token: ${error.message} Paste a valid token to continue.`;
      case 403:
        return `The token may not read compliance data: ${error.message}`;
      case 429:
        return `Beacon is limiting requests: ${error.message}`;
      default:
        return `Loading the data failed with status ${error.status}: ${error.message}`;
    }
  }

  // A token goes into a header, so it must be visible ASCII without spaces.
  function tokenProblem(token) {
    if (token === "") {
      return "Paste a token first.";
    }
    if (!/^[\x21-\x7e]+$/.test(token)) {
      return "The token contains spaces or characters that a token cannot contain; paste it again.";
    }
    return null;
  }

  async function load({ focusDashboard = false } = {}) {
    const generation = ++state.generation;
    const filter = chosenFilter();
    const filtered = Object.keys(filter).length > 0;
    document.body.dataset.state = "loading";
    setText("status", "Loading…");
    byId("refresh").disabled = true;
    // The first load has no dashboard to show yet, so it shows a placeholder.
    byId("loading").hidden = !byId("dashboard").hidden;
    byId("sign-in").hidden = true;

    try {
      const none = {};
      const [partner, tenantGroups, platformGroups, policyGroups, allTenants, allPlatforms] =
        await Promise.all([
          getJson(apiUrl(CONTAINER_PATH)),
          fetchTenants(filter),
          fetchPlatforms(filter),
          fetchTopPolicies(filter),
          filtered ? fetchTenants(none) : null,
          filtered ? fetchPlatforms(none) : null,
        ]);
      if (generation !== state.generation) {
        return;
      }
      const now = Date.now();
      state.tenants = tenantGroups.map((group) => tenantFromGroup(group, now));

      showAlert("");
      byId("loading").hidden = true;
      byId("session").hidden = false;
      byId("dashboard").hidden = false;
      setText("partner", `Partner tenant ${partner.id}`);
      byId("partner").title = partner.id;
      renderFilterOptions(allTenants ?? tenantGroups, allPlatforms ?? platformGroups);
      renderSummary(state.tenants);
      renderTenants();
      renderPlatforms(platformGroups);
      renderPolicies(policyGroups);
      setText("status", `Updated at ${timeFormat.format(now)}.`);
      document.body.dataset.state = "ready";
      if (focusDashboard) {
        byId("dashboard-title").focus();
      }
    } catch (error) {
      if (generation !== state.generation) {
        return;
      }
      byId("loading").hidden = true;
      const message = describeFailure(error);
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        showSignIn(message);
        return;
      }
      showAlert(message);
      setText("status", "");
      // Refresh and Change token stay reachable after a failed first load.
      byId("session").hidden = false;
      document.body.dataset.state = "error";
    } finally {
      if (generation === state.generation) {
        byId("refresh").disabled = false;
      }
    }
  }

  // --- Events -----------------------------------------------------------------------------

  function start() {
    byId("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = byId("token").value.trim();
      const problem = tokenProblem(token);
      if (problem !== null) {
        showSignIn(problem);
        return;
      }
      state.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      byId("token").value = "";
      load({ focusDashboard: true });
    });

    byId("refresh").addEventListener("click", () => load());
    byId("change-token").addEventListener("click", () => {
      state.generation++;
      showSignIn("");
    });

    for (const id of ["tenant-filter", "platform-filter"]) {
      byId(id).addEventListener("change", () => load());
    }
    byId("filters").addEventListener("reset", (event) => {
      event.preventDefault();
      byId("tenant-filter").value = "";
      byId("platform-filter").value = "";
      load();
    });

    for (const header of document.querySelectorAll("#tenants th[data-sort]")) {
      header.querySelector("button").addEventListener("click", () => {
        const key = header.dataset.sort;
        // A new column starts ascending, except counts and times, where the largest and
        // latest come first.
        if (state.sort.key === key) {
          state.sort.descending = !state.sort.descending;
        } else {
          state.sort = { key, descending: key !== "name" && key !== "share" };
        }
        renderTenants();
      });
    }

    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved !== null && tokenProblem(saved) === null) {
      state.token = saved;
      load();
    } else {
      showSignIn("");
    }
  }

  start();
})();
