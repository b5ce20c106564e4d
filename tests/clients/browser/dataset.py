"""The known dataset that the browser test loads, and the figures the dashboard must show for it.

The figures are computed here from the rows, independently of Beacon and of the page, with
the page's rules. Counts are summed per tenant, per platform and per tenant and policy. The
compliant share is compliant / (compliant + non-compliant + errors) in tenths of a percent,
rounded half up. A tenant is stale when its oldest refresh time is more than 24 hours old.

The rows include the cases that break naive pages. Some tenant names contain HTML, and some
counts are above 2^53, which a JavaScript number cannot represent exactly. One tenant's rows are
all zero, one tenant has no display name, one row has no platform, and two tenants were
refreshed 30 and 72 hours ago.
"""

from __future__ import annotations

import datetime
import json
import urllib.request
import uuid
from dataclasses import dataclass

GRAPH_COLLECTION = "/beta/tenantRelationships/managedTenants/aggregatedPolicyCompliances"
STALE_AFTER = datetime.timedelta(hours=24)

# Namespace of the deterministic policy ids.
POLICY_NAMESPACE = uuid.UUID("6f1c2a9e-0d7b-4c55-9a43-1b2e8f6d0c11")

CONTOSO = ("4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a", "Contoso Ltd")
FABRIKAM = ("7d2f1b3c-8e4a-4f6b-9c1d-2a5e8f0b3c47", "Fabrikam <b>Retail</b> & Co")
WOODGROVE = (
    "1c9e4a7b-3d2f-4e8a-b6c5-9f0d1e2a3b4c",
    "Woodgrove <img src=x onerror=\"document.title='injected'\"> Bank",
)
NORTHWIND = ("2b8d5f1e-6c3a-4b9d-8e7f-0a1b2c3d4e5f", "Northwind Traders")
TAILSPIN = ("3e7a9c2d-1f5b-4d8e-a0b1-c2d3e4f5a6b7", "Tailspin Toys")
LITWARE = ("5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d", "Litware")
UNNAMED = ("9f0c1d2e-3a4b-4c5d-9e6f-7a8b9c0d1e2f", None)
ADVENTURE_WORKS = ("6c5d4e3f-2a1b-4c0d-9e8f-7a6b5c4d3e2f", "Adventure Works")

# 2^53 + 1, the first integer that a JavaScript number rounds.
ABOVE_2_53 = 9_007_199_254_740_993


@dataclass(frozen=True)
class Row:
    """One aggregatedPolicyCompliance entry."""

    tenant_id: str
    tenant_name: str | None
    policy_name: str
    platform: str | None
    compliant: int
    non_compliant: int
    errors: int
    hours_since_refresh: float

    @property
    def policy_id(self) -> str:
        """A policy id that is the same in every run, unique per tenant and policy name."""
        return str(uuid.uuid5(POLICY_NAMESPACE, f"{self.tenant_id}/{self.policy_name}"))

    def refreshed(self, now: datetime.datetime) -> datetime.datetime:
        """The row's lastRefreshedDateTime, counted back from `now`."""
        return now - datetime.timedelta(hours=self.hours_since_refresh)

    def body(self, now: datetime.datetime) -> dict[str, object]:
        """The JSON body that creates this row through the Graph view."""
        refreshed = self.refreshed(now).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {
            "tenantId": self.tenant_id,
            "tenantDisplayName": self.tenant_name,
            "compliancePolicyId": self.policy_id,
            "compliancePolicyName": self.policy_name,
            "compliancePolicyType": "deviceCompliancePolicy",
            "compliancePolicyPlatform": self.platform,
            "numberOfCompliantDevices": self.compliant,
            "numberOfNonCompliantDevices": self.non_compliant,
            "numberOfErrorDevices": self.errors,
            "policyModifiedDateTime": "2024-02-12T09:15:00Z",
            "lastRefreshedDateTime": refreshed,
        }


def row(tenant: tuple[str, str | None], policy: str, platform: str | None, compliant: int,
        non_compliant: int, errors: int, hours: float) -> Row:
    return Row(tenant[0], tenant[1], policy, platform, compliant, non_compliant, errors, hours)


# Each tenant's non-compliant and compliant sums differ from every other tenant's, and so do the
# eleven largest per-policy sums, so every order that the test checks is unique.
ROWS: list[Row] = [
    row(CONTOSO, "Windows 10 baseline", "windows10AndLater", 1200, 87, 3, 2),
    row(CONTOSO, "iOS passcode", "iOS", 430, 12, 0, 2),
    row(CONTOSO, "Android Enterprise", "androidWorkProfile", 210, 31, 2, 2),
    row(FABRIKAM, "Windows 10 baseline", "windows10AndLater", 845, 140, 6, 5),
    row(FABRIKAM, "macOS FileVault", "macOS", 120, 9, 1, 5),
    row(WOODGROVE, "Windows 11 security", "windows10AndLater", 2300, 410, 12, 30),
    row(WOODGROVE, "iOS passcode", "iOS", 640, 75, 4, 30),
    row(NORTHWIND, "Windows 10 baseline", "windows10AndLater", ABOVE_2_53,
        2_251_799_813_685_249, 17, 1),
    row(NORTHWIND, "Android device health", "android", 4_503_599_627_370_497, 65, 0, 1),
    row(TAILSPIN, "Windows 10 baseline", "windows10AndLater", 510, 22, 0, 3),
    row(TAILSPIN, "iOS passcode", "iOS", 95, 48, 5, 72),
    row(LITWARE, "macOS FileVault", "macOS", 0, 0, 0, 4),
    row(UNNAMED, "Linux baseline", None, 33, 14, 1, 6),
    row(ADVENTURE_WORKS, "Windows 10 baseline", "windows10AndLater", 1800, 260, 9, 8),
    row(ADVENTURE_WORKS, "Android Enterprise", "android", 300, 57, 3, 8),
    row(ADVENTURE_WORKS, "iOS passcode", "iOS", 150, 19, 0, 8),
]

# A row of another partner tenant, which the dashboard must never show.
OTHER_PARTNER_ROW = row(("0d1e2f3a-4b5c-4d6e-8f7a-8b9c0d1e2f3a", "Other partner's customer"),
                        "Windows 10 baseline", "windows10AndLater", 5, 999_999, 0, 1)


def create_rows(base_url: str, token: str, rows: list[Row], now: datetime.datetime) -> None:
    """Create `rows` through Beacon's Graph view, one POST each."""
    for entry in rows:
        request = urllib.request.Request(
            base_url + GRAPH_COLLECTION,
            data=json.dumps(entry.body(now)).encode(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Prefer": "return=minimal",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 204, f"creating {entry} returned {response.status}"


@dataclass(frozen=True)
class TenantFigures:
    """What the tenant table shows for one tenant."""

    tenant_id: str
    name: str
    compliant: int
    non_compliant: int
    errors: int
    oldest_refresh: datetime.datetime

    @property
    def total(self) -> int:
        return self.compliant + self.non_compliant + self.errors

    def stale(self, now: datetime.datetime) -> bool:
        return now - self.oldest_refresh > STALE_AFTER


def tenant_figures(rows: list[Row], now: datetime.datetime) -> list[TenantFigures]:
    """Sum the rows per tenant; a tenant without a display name is shown by its id."""
    tenants: dict[str, TenantFigures] = {}
    for entry in rows:
        refreshed = entry.refreshed(now)
        known = tenants.get(entry.tenant_id)
        if known is None:
            tenants[entry.tenant_id] = TenantFigures(
                entry.tenant_id,
                entry.tenant_name or entry.tenant_id,
                entry.compliant,
                entry.non_compliant,
                entry.errors,
                refreshed,
            )
        else:
            tenants[entry.tenant_id] = TenantFigures(
                known.tenant_id,
                known.name,
                known.compliant + entry.compliant,
                known.non_compliant + entry.non_compliant,
                known.errors + entry.errors,
                min(known.oldest_refresh, refreshed),
            )
    return list(tenants.values())


def platform_figures(rows: list[Row]) -> list[tuple[str, int]]:
    """Non-compliant devices per platform, largest first; no platform is `(no platform)`."""
    sums: dict[str, int] = {}
    for entry in rows:
        label = entry.platform or "(no platform)"
        sums[label] = sums.get(label, 0) + entry.non_compliant
    return sorted(sums.items(), key=lambda item: -item[1])


def top_policies(rows: list[Row], count: int = 10) -> list[tuple[str, str, str, int]]:
    """The `count` (policy, tenant, platform, non-compliant) with the most non-compliant devices.

    A policy is a tenant's policy: rows are summed per tenant and policy id.
    """
    sums: dict[tuple[str, str], tuple[str, str, str, int]] = {}
    for entry in rows:
        key = (entry.tenant_id, entry.policy_id)
        known = sums.get(key, (entry.policy_name, entry.tenant_name or entry.tenant_id,
                               entry.platform or "(no platform)", 0))
        sums[key] = (*known[:3], known[3] + entry.non_compliant)
    policies = [policy for policy in sums.values() if policy[3] > 0]
    return sorted(policies, key=lambda policy: -policy[3])[:count]


def share_tenths(part: int, total: int) -> int | None:
    """`part / total` in tenths of a percent, rounded half up, or None for a total of 0."""
    if total == 0:
        return None
    return (part * 2000 + total) // (2 * total)


def format_share(part: int, total: int) -> str:
    """The share as the page shows it in the en-US locale, such as `97.3%`, or `–`."""
    tenths = share_tenths(part, total)
    return "–" if tenths is None else f"{tenths // 10}.{tenths % 10}%"


def format_count(value: int) -> str:
    """A count as the page shows it in the en-US locale, such as `1,234`."""
    return f"{value:,}"


def demo_rows() -> list[Row]:
    """An everyday dataset without traps, for the screenshot in the README: nine customer
    tenants with a few policies each, two of them refreshed more than a day ago."""
    tenants = [
        ("b1f6a0c2-0d4e-4f8a-9b3c-1e2d3f4a5b01", "Contoso Ltd", 3),
        ("b1f6a0c2-0d4e-4f8a-9b3c-1e2d3f4a5b02", "Fabrikam Inc.", 5),
        ("b1f6a0c2-0d4e-4f8a-9b3c-1e2d3f4a5b03", "Northwind Traders", 2),
        ("b1f6a0c2-0d4e-4f8a-9b3c-1e2d3f4a5b04", "Tailspin Toys", 31),
        ("b1f6a0c2-0d4e-4f8a-9b3c-1e2d3f4a5b05", "Woodgrove Bank", 4),
        ("b1f6a0c2-0d4e-4f8a-9b3c-1e2d3f4a5b06", "Adventure Works", 6),
        ("b1f6a0c2-0d4e-4f8a-9b3c-1e2d3f4a5b07", "Litware Inc.", 1),
        ("b1f6a0c2-0d4e-4f8a-9b3c-1e2d3f4a5b08", "Alpine Ski House", 50),
        ("b1f6a0c2-0d4e-4f8a-9b3c-1e2d3f4a5b09", "Proseware", 7),
    ]
    policies = [
        ("Windows 11 security baseline", "windows10AndLater", 0.88),
        ("BitLocker required", "windows10AndLater", 0.93),
        ("iOS passcode", "iOS", 0.95),
        ("Android Enterprise", "androidWorkProfile", 0.84),
        ("macOS FileVault", "macOS", 0.97),
    ]
    rows = []
    for number, (tenant_id, name, hours) in enumerate(tenants, start=1):
        for index, (policy, platform, rate) in enumerate(policies):
            # Fixed arithmetic in place of random numbers, so every run shows the same page.
            devices = 40 + (number * 97 + index * 61) % 900
            compliant = int(devices * (rate - (number % 4) * 0.03))
            errors = (number + index) % 4
            rows.append(Row(tenant_id, name, policy, platform, compliant,
                            devices - compliant - errors, errors, hours))
    return rows
