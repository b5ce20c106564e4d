"""Realistic aggregatedPolicyCompliance entries for the tests to create."""

from __future__ import annotations

import datetime
from typing import Any

from msgraph_beta.generated.models.managed_tenants.aggregated_policy_compliance import (
    AggregatedPolicyCompliance,
)

GRAPH_VIEW_TYPE = "#microsoft.graph.managedTenants.aggregatedPolicyCompliance"
SEED_VIEW_TYPE = "#microsoft.management.services.api.aggregatedPolicyCompliance"

UTC = datetime.timezone.utc
CENTRAL_EUROPEAN_SUMMER_TIME = datetime.timezone(datetime.timedelta(hours=2))


def windows_baseline(**overrides: Any) -> AggregatedPolicyCompliance:
    """Return Contoso's Windows 10 baseline summary, with `overrides` replacing its fields.

    `last_refreshed_date_time` carries a +02:00 offset and a fraction of a second, so that a
    read-back shows both the conversion to UTC and the kept precision.
    """
    fields: dict[str, Any] = {
        "odata_type": GRAPH_VIEW_TYPE,
        "tenant_id": "4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a",
        "tenant_display_name": "Contoso Ltd",
        "compliance_policy_id": "0c4bd1d4-1d3f-4b86-8b93-3f0a5d0e5c21",
        "compliance_policy_name": "Windows 10 baseline",
        "compliance_policy_type": "deviceCompliancePolicy",
        "compliance_policy_platform": "windows10AndLater",
        "number_of_compliant_devices": 120,
        "number_of_non_compliant_devices": 7,
        "number_of_error_devices": 1,
        "policy_modified_date_time": datetime.datetime(2024, 2, 12, 9, 15, tzinfo=UTC),
        "last_refreshed_date_time": datetime.datetime(
            2024, 3, 1, 7, 30, 0, 250000, tzinfo=CENTRAL_EUROPEAN_SUMMER_TIME
        ),
    }
    fields.update(overrides)
    return AggregatedPolicyCompliance(**fields)
