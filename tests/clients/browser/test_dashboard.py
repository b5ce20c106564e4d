"""The dashboard at /dashboard, driven in headless Chromium against a server with a known dataset.

Every figure is read from the page's text and compared with the figure that `dataset` computes
from the rows, in the en-US locale unless a test sets another.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

import dataset
from conftest import PHONE, Deployment, PageLog, new_page, sign_in, wait_until_ready

# Reads the tenant table as a list of rows, each a dict of its cells' text and its marks.
READ_TENANT_ROWS = """
rows => rows.map(row => ({
    name: row.children[0].textContent,
    compliant: row.children[1].textContent,
    nonCompliant: row.children[2].textContent,
    errors: row.children[3].textContent,
    share: row.children[4].textContent,
    refreshed: row.children[5].textContent,
    staleRow: row.classList.contains("stale"),
    staleBadge: row.querySelector(".stale-badge") !== null,
}))
"""

READ_TEXT = "nodes => nodes.map(node => node.textContent.trim())"


def tenant_rows(page: Page) -> list[dict[str, object]]:
    return page.eval_on_selector_all("#tenants tbody tr", READ_TENANT_ROWS)


def tenant_names(page: Page) -> list[str]:
    return page.eval_on_selector_all("#tenants tbody tr > th", READ_TEXT)


def expected_rows(deployment: Deployment, rows: list[dataset.Row]) -> dict[str, dict[str, object]]:
    """The tenant table's expected cells by tenant name; refresh times are checked apart."""
    return {
        tenant.name: {
            "compliant": dataset.format_count(tenant.compliant),
            "nonCompliant": dataset.format_count(tenant.non_compliant),
            "errors": dataset.format_count(tenant.errors),
            "share": dataset.format_share(tenant.compliant, tenant.total),
            "stale": tenant.stale(deployment.now),
        }
        for tenant in dataset.tenant_figures(rows, deployment.now)
    }


def read_tenant_table(page: Page) -> dict[str, dict[str, object]]:
    displayed = {}
    for row in tenant_rows(page):
        assert row["staleRow"] == row["staleBadge"], f"stale row without badge: {row}"
        displayed[row["name"]] = {
            "compliant": row["compliant"],
            "nonCompliant": row["nonCompliant"],
            "errors": row["errors"],
            "share": row["share"],
            "stale": row["staleRow"],
        }
    return displayed


def test_summary_matches_dataset(page: Page, deployment: Deployment) -> None:
    sign_in(page, deployment)
    tenants = dataset.tenant_figures(dataset.ROWS, deployment.now)
    compliant = sum(tenant.compliant for tenant in tenants)
    non_compliant = sum(tenant.non_compliant for tenant in tenants)
    errors = sum(tenant.errors for tenant in tenants)
    total = compliant + non_compliant + errors
    stale = sum(tenant.stale(deployment.now) for tenant in tenants)

    expect(page.locator("#overall-share")).to_have_text(dataset.format_share(compliant, total))
    expect(page.locator("#overall-note")).to_have_text(
        f"{dataset.format_count(compliant)} of {dataset.format_count(total)} devices"
    )
    expect(page.locator("#total-compliant")).to_have_text(dataset.format_count(compliant))
    expect(page.locator("#total-non-compliant")).to_have_text(dataset.format_count(non_compliant))
    expect(page.locator("#total-errors")).to_have_text(dataset.format_count(errors))
    expect(page.locator("#tenant-count")).to_have_text(str(len(tenants)))
    expect(page.locator("#stale-count")).to_have_text(f"{stale} stale")
    expect(page.locator("#partner")).to_have_text(f"Partner tenant {deployment.partner}")


def test_tenant_table_matches_dataset(page: Page, deployment: Deployment) -> None:
    sign_in(page, deployment)

    assert read_tenant_table(page) == expected_rows(deployment, dataset.ROWS)


def test_counts_above_2_53_are_exact(page: Page, deployment: Deployment) -> None:
    sign_in(page, deployment)
    northwind = read_tenant_table(page)[dataset.NORTHWIND[1]]

    # 2^53 + 1 + 2^52 + 1: a JavaScript number would end in ...488 or ...490 rounded.
    assert northwind["compliant"] == "13,510,798,882,111,490"
    assert northwind["nonCompliant"] == "2,251,799,813,685,314"


def test_stale_tenants_are_marked(page: Page, deployment: Deployment) -> None:
    sign_in(page, deployment)
    displayed = read_tenant_table(page)

    stale = {name for name, row in displayed.items() if row["stale"]}
    assert stale == {dataset.WOODGROVE[1], dataset.TAILSPIN[1]}
    # Tailspin's oldest row, 72 hours old, decides, although its other row is fresh.
    refreshed = {row["name"]: row["refreshed"] for row in tenant_rows(page)}
    assert refreshed[dataset.TAILSPIN[1]].endswith("Stale")
    assert not refreshed[dataset.CONTOSO[1]].endswith("Stale")


def test_html_in_names_is_text(page: Page, deployment: Deployment, page_log: PageLog) -> None:
    sign_in(page, deployment)

    names = tenant_names(page)
    assert dataset.WOODGROVE[1] in names
    assert dataset.FABRIKAM[1] in names
    assert page.locator("#tenants tbody img, #tenants tbody b").count() == 0
    assert page.title() != "injected"
    assert page_log.console_errors == []


def test_tenant_without_name_shows_its_id(page: Page, deployment: Deployment) -> None:
    sign_in(page, deployment)

    assert dataset.UNNAMED[0] in tenant_names(page)


def test_page_loads_only_from_its_server(
    page: Page, deployment: Deployment, page_log: PageLog
) -> None:
    sign_in(page, deployment)

    outside = [url for url in page_log.requests if not url.startswith(deployment.server.base_url)]
    assert outside == []
    # A Content-Security-Policy violation or a script error shows up as a console error.
    assert page_log.console_errors == []


def test_other_partners_rows_are_absent(page: Page, deployment: Deployment) -> None:
    sign_in(page, deployment)

    assert dataset.OTHER_PARTNER_ROW.tenant_name not in tenant_names(page)
    expect(page.locator("#tenant-count")).to_have_text(
        str(len(dataset.tenant_figures(dataset.ROWS, deployment.now)))
    )


def test_platform_chart_matches_dataset(page: Page, deployment: Deployment) -> None:
    sign_in(page, deployment)

    labels = page.eval_on_selector_all("#platforms .bar-label", READ_TEXT)
    values = page.eval_on_selector_all("#platforms .bar-value", READ_TEXT)
    expected = dataset.platform_figures(dataset.ROWS)
    assert list(zip(labels, values)) == [
        (platform, dataset.format_count(count)) for platform, count in expected
    ]
    # The largest bar fills its track, and every bar is hidden from assistive technology,
    # which reads the label and the value instead.
    widths = page.eval_on_selector_all(".bar-fill", "bars => bars.map(bar => bar.style.width)")
    assert widths[0] == "100%"
    assert page.locator("#platforms .bar-track:not([aria-hidden=true])").count() == 0


def test_top_policies_match_dataset(page: Page, deployment: Deployment) -> None:
    sign_in(page, deployment)

    displayed = page.eval_on_selector_all(
        "#policies tbody tr",
        """rows => rows.map(row => [
            row.children[0].textContent,
            row.querySelector(".policy-name").textContent,
            row.querySelector(".policy-tenant").textContent,
            row.querySelector(".policy-platform").textContent,
            row.children[2].textContent,
        ])""",
    )
    expected = [
        [str(rank), policy, tenant, platform, dataset.format_count(count)]
        for rank, (policy, tenant, platform, count) in enumerate(
            dataset.top_policies(dataset.ROWS), start=1
        )
    ]
    assert displayed == expected


def test_sorting_by_column(page: Page, deployment: Deployment) -> None:
    sign_in(page, deployment)
    tenants = dataset.tenant_figures(dataset.ROWS, deployment.now)
    by_non_compliant = [t.name for t in sorted(tenants, key=lambda t: t.non_compliant)]
    header = page.locator("#tenants th[data-sort=nonCompliant]")

    header.get_by_role("button").click()

    expect(header).to_have_attribute("aria-sort", "descending")
    assert tenant_names(page) == by_non_compliant[::-1]

    header.get_by_role("button").click()

    expect(header).to_have_attribute("aria-sort", "ascending")
    assert tenant_names(page) == by_non_compliant
    assert page.locator("#tenants th[aria-sort]").count() == 1


def test_sorting_by_share_with_keyboard(page: Page, deployment: Deployment) -> None:
    sign_in(page, deployment)
    tenants = dataset.tenant_figures(dataset.ROWS, deployment.now)

    # The first load sorts by share, lowest first; a tenant without devices has no share and
    # ranks lowest.
    def share_key(tenant: dataset.TenantFigures) -> int:
        tenths = dataset.share_tenths(tenant.compliant, tenant.total)
        return -1 if tenths is None else tenths

    by_share = [t.name for t in sorted(tenants, key=lambda t: (share_key(t), t.name.lower()))]
    header = page.locator("#tenants th[data-sort=share]")
    expect(header).to_have_attribute("aria-sort", "ascending")
    assert tenant_names(page) == by_share

    header.get_by_role("button").focus()
    page.keyboard.press("Enter")

    expect(header).to_have_attribute("aria-sort", "descending")
    assert tenant_names(page) == by_share[::-1]


def test_platform_filter(page: Page, deployment: Deployment) -> None:
    sign_in(page, deployment)
    ios_rows = [row for row in dataset.ROWS if row.platform == "iOS"]

    page.get_by_label("Platform", exact=True).select_option(label="iOS")
    wait_until_ready(page)

    assert read_tenant_table(page) == expected_rows(deployment, ios_rows)
    labels = page.eval_on_selector_all("#platforms .bar-label", READ_TEXT)
    assert labels == ["iOS"]
    # The options still offer every tenant and platform, not only the filtered ones.
    assert page.locator("#platform-filter option").count() == 1 + len(
        dataset.platform_figures(dataset.ROWS)
    )


def test_tenant_filter_and_clear(page: Page, deployment: Deployment) -> None:
    sign_in(page, deployment)
    contoso_rows = [row for row in dataset.ROWS if row.tenant_id == dataset.CONTOSO[0]]

    page.get_by_label("Tenant", exact=True).select_option(label=dataset.CONTOSO[1])
    wait_until_ready(page)

    assert read_tenant_table(page) == expected_rows(deployment, contoso_rows)
    policies = page.eval_on_selector_all("#policies .policy-tenant", READ_TEXT)
    assert set(policies) == {dataset.CONTOSO[1]}

    page.get_by_role("button", name="Clear filters").click()
    wait_until_ready(page)

    assert read_tenant_table(page) == expected_rows(deployment, dataset.ROWS)


def test_paging_follows_next_links(page: Page, deployment: Deployment) -> None:
    # Two groups a page make every query of the page span several pages.
    sign_in(page, deployment, query="?pageSize=2")

    assert read_tenant_table(page) == expected_rows(deployment, dataset.ROWS)
    labels = page.eval_on_selector_all("#platforms .bar-label", READ_TEXT)
    assert len(labels) == len(dataset.platform_figures(dataset.ROWS))


def test_bad_token_shows_message(page: Page, deployment: Deployment) -> None:
    page.goto(deployment.dashboard_url)
    page.get_by_label("Access token").fill("not-a-token")
    page.get_by_role("button", name="Show dashboard").click()

    page.wait_for_selector("body[data-state=signed-out] #alert:not([hidden])")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Beacon rejected the token")
    expect(alert).to_contain_text("Paste a valid token to continue.")
    expect(page.get_by_label("Access token")).to_be_focused()
    assert page.evaluate("sessionStorage.length") == 0


def test_token_with_spaces_is_rejected(page: Page, deployment: Deployment) -> None:
    page.goto(deployment.dashboard_url)
    page.get_by_label("Access token").fill("two words")
    page.get_by_role("button", name="Show dashboard").click()

    expect(page.get_by_role("alert")).to_contain_text("The token contains spaces")


def test_token_kept_for_the_tab(page: Page, deployment: Deployment) -> None:
    sign_in(page, deployment)

    page.reload()
    wait_until_ready(page)

    assert page.evaluate("Object.keys(sessionStorage)") == ["beacon.dashboard.token"]
    page.get_by_role("button", name="Change token").click()
    expect(page.get_by_label("Access token")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_numbers_use_browser_locale(browser: Browser, deployment: Deployment) -> None:
    page = new_page(browser, PageLog(), locale="de-DE")
    try:
        sign_in(page, deployment)

        northwind = read_tenant_table(page)[dataset.NORTHWIND[1]]
        assert northwind["compliant"] == "13.510.798.882.111.490"
    finally:
        page.context.close()


def test_desktop_screenshot(page: Page, deployment: Deployment, artifacts: Path) -> None:
    sign_in(page, deployment)

    path = artifacts / "dashboard.png"
    page.screenshot(path=str(path), full_page=True)

    assert path.stat().st_size > 0


def test_demo_screenshot(page: Page, deployment: Deployment, artifacts: Path) -> None:
    rows = dataset.demo_rows()
    compliant = sum(row.compliant for row in rows)
    total = sum(row.compliant + row.non_compliant + row.errors for row in rows)

    sign_in(page, deployment, token=deployment.demo_token)

    expect(page.locator("#overall-share")).to_have_text(dataset.format_share(compliant, total))
    page.screenshot(path=str(artifacts / "dashboard-demo.png"), full_page=True)


def test_phone_width_fits(browser: Browser, deployment: Deployment, artifacts: Path) -> None:
    page = new_page(browser, PageLog(), viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        sign_in(page, deployment)

        # Only the tables' own scroll areas may be wider than the screen, never the page.
        page_width = page.evaluate("document.documentElement.scrollWidth")
        assert page_width <= PHONE["width"]
        page.screenshot(path=str(artifacts / "dashboard-phone.png"), full_page=True)
    finally:
        page.context.close()


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/app.js", "/dashboard/app.css"])
def test_files_need_no_token(page: Page, deployment: Deployment, path: str) -> None:
    response = page.request.get(deployment.server.base_url + path)

    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
