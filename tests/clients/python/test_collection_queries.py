"""List, count and page through the collection with the SDK's query parameters and PageIterator.

Query options go through the request builders' generated query-parameter classes and the
`Prefer` header through the request configuration, as a Graph user writes them. The seed view,
which has no request builder of its own, is read through the SDK's raw-URL mechanism.
"""

from __future__ import annotations

import asyncio
import datetime
from urllib.parse import quote

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_beta.generated.tenant_relationships.managed_tenants.aggregated_policy_compliances.count.count_request_builder import (  # noqa: E501
    CountRequestBuilder,
)
from msgraph_core.tasks.page_iterator import PageIterator

from samples import SEED_VIEW_TYPE, windows_baseline

WINDOWS_WITH_NON_COMPLIANT_DEVICES = (
    "numberOfNonCompliantDevices gt 0 and startswith(compliancePolicyPlatform, 'windows')"
)


async def create_mixed_tenants(compliances) -> None:
    """Create five entries, three of which match WINDOWS_WITH_NON_COMPLIANT_DEVICES."""
    await compliances.post(windows_baseline(tenant_display_name="Contoso Ltd"))
    await compliances.post(
        windows_baseline(tenant_display_name="Fabrikam Inc", number_of_non_compliant_devices=12)
    )
    await compliances.post(
        windows_baseline(tenant_display_name="Northwind Traders", number_of_non_compliant_devices=0)
    )
    await compliances.post(
        windows_baseline(
            tenant_display_name="Contoso Ltd",
            compliance_policy_name="iOS baseline",
            compliance_policy_platform="iOS",
            number_of_non_compliant_devices=4,
        )
    )
    await compliances.post(
        windows_baseline(
            tenant_display_name="Woodgrove Bank",
            compliance_policy_platform="windows81AndLater",
            number_of_non_compliant_devices=3,
        )
    )


def with_max_page_size(size: int, query_parameters=None) -> RequestConfiguration:
    config = RequestConfiguration(query_parameters=query_parameters)
    config.headers.add("Prefer", f"odata.maxpagesize={size}")
    return config


async def read_all_pages(first_page, request_adapter, max_page_size: int):
    """Follow every next link with PageIterator; return the items and each page's length."""
    iterator = PageIterator(first_page, request_adapter)
    # The preference is asked for again on each page, as OData leaves the size of later pages to
    # each request. NOTE: PageIterator.set_headers() fails with a TypeError in msgraph-core 1.5.2
    # (it passes the dict as keyword arguments), so the header goes into `headers` directly.
    iterator.headers.add("Prefer", f"odata.maxpagesize={max_page_size}")

    items = []
    pages = []
    page_lengths: list[int] = []

    def collect(item) -> bool:
        items.append(item)
        # The pages stay referenced, so that a new page never takes an old one's identity.
        if not pages or pages[-1] is not iterator.current_page:
            pages.append(iterator.current_page)
            page_lengths.append(0)
        page_lengths[-1] += 1
        return True

    await iterator.iterate(collect)
    return items, page_lengths


async def test_list_applies_filter_select_orderby_top_and_count(compliances):
    await create_mixed_tenants(compliances)
    query = compliances.AggregatedPolicyCompliancesRequestBuilderGetQueryParameters(
        filter=WINDOWS_WITH_NON_COMPLIANT_DEVICES,
        select=["tenantDisplayName", "numberOfNonCompliantDevices"],
        orderby=["numberOfNonCompliantDevices desc"],
        top=2,
        count=True,
    )

    page = await compliances.get(RequestConfiguration(query_parameters=query))

    # @odata.count counts every match; $top bounds the whole result, so no next link follows.
    assert type(page.odata_count) is int
    assert page.odata_count == 3
    assert page.odata_next_link is None
    assert [entity.tenant_display_name for entity in page.value] == [
        "Fabrikam Inc",
        "Contoso Ltd",
    ]
    assert [entity.number_of_non_compliant_devices for entity in page.value] == [12, 7]
    assert all(type(entity.number_of_non_compliant_devices) is int for entity in page.value)
    assert all(entity.compliance_policy_name is None for entity in page.value)
    assert all(entity.last_refreshed_date_time is None for entity in page.value)


async def test_list_applies_skip_after_orderby(compliances):
    await create_mixed_tenants(compliances)
    query = compliances.AggregatedPolicyCompliancesRequestBuilderGetQueryParameters(
        filter=WINDOWS_WITH_NON_COMPLIANT_DEVICES,
        orderby=["numberOfNonCompliantDevices desc"],
        skip=1,
    )

    page = await compliances.get(RequestConfiguration(query_parameters=query))

    assert [entity.tenant_display_name for entity in page.value] == [
        "Contoso Ltd",
        "Woodgrove Bank",
    ]
    assert all(entity.policy_modified_date_time.tzinfo is not None for entity in page.value)


async def test_list_with_rejected_filter_raises_bad_request(compliances):
    query = compliances.AggregatedPolicyCompliancesRequestBuilderGetQueryParameters(
        filter="numberOfDevices gt 0"
    )

    with pytest.raises(ODataError) as raised:
        await compliances.get(RequestConfiguration(query_parameters=query))

    assert raised.value.response_status_code == 400
    assert raised.value.error.code == "BadRequest"
    assert "numberOfDevices" in raised.value.error.message


async def test_count_segment_returns_integer(compliances):
    await create_mixed_tenants(compliances)
    filtered = RequestConfiguration(
        query_parameters=CountRequestBuilder.CountRequestBuilderGetQueryParameters(
            filter=WINDOWS_WITH_NON_COMPLIANT_DEVICES
        )
    )

    total = await compliances.count.get()
    matching = await compliances.count.get(filtered)

    assert type(total) is int
    assert total == 5
    assert type(matching) is int
    assert matching == 3


async def test_count_of_empty_collection_is_zero(compliances):
    assert await compliances.count.get() == 0


async def test_page_iterator_reads_every_page_once(beacon, client, compliances):
    # Sent at once, the creates share the server's disk syncs, which keeps the test fast.
    created = await asyncio.gather(
        *(compliances.post(windows_baseline(number_of_error_devices=n)) for n in range(25))
    )
    created_ids = [entity.id for entity in created]

    first_page = await compliances.get(with_max_page_size(10))
    items, page_lengths = await read_all_pages(first_page, client.request_adapter, 10)

    assert len(first_page.value) == 10
    assert first_page.odata_next_link.startswith(beacon.beta_url + "/")
    assert page_lengths == [10, 10, 5]
    # The collection is ordered by id, compared by code point, when no $orderby is given.
    assert [item.id for item in items] == sorted(created_ids)


async def test_page_iterator_keeps_filter_orderby_and_select(client, compliances):
    matching = [
        windows_baseline(
            tenant_display_name=f"Fabrikam {number:02}",
            compliance_policy_name="O'Brien & Co baseline",
        )
        for number in range(23)
    ]
    other = [windows_baseline(tenant_display_name=f"Contoso {number:02}") for number in range(3)]
    await asyncio.gather(*(compliances.post(body) for body in matching + other))
    query = compliances.AggregatedPolicyCompliancesRequestBuilderGetQueryParameters(
        filter=(
            "startswith(tenantDisplayName, 'Fabrikam') "
            "and compliancePolicyName eq 'O''Brien & Co baseline'"
        ),
        orderby=["tenantDisplayName desc"],
        select=["tenantDisplayName"],
        count=True,
    )

    first_page = await compliances.get(with_max_page_size(10, query))
    items, page_lengths = await read_all_pages(first_page, client.request_adapter, 10)

    assert first_page.odata_count == 23
    assert page_lengths == [10, 10, 3]
    assert [item.tenant_display_name for item in items] == [
        f"Fabrikam {number:02}" for number in reversed(range(23))
    ]
    assert all(item.compliance_policy_name is None for item in items)


async def test_seed_view_reads_through_with_url(beacon, compliances, tenant_id):
    created = await compliances.post(windows_baseline())
    await compliances.post(windows_baseline(tenant_display_name="Fabrikam Inc"))
    contoso_only = quote("organizationDisplayName eq 'Contoso Ltd'")
    seed_collection = f"{beacon.beta_url}/aggregatedPolicyCompliances"

    page = await compliances.with_url(f"{seed_collection}?$filter={contoso_only}").get()
    seed_count = await compliances.count.with_url(f"{seed_collection}/$count").get()

    assert seed_count == 2
    assert len(page.value) == 1
    entity = page.value[0]
    assert entity.id == created.id
    assert entity.odata_type == SEED_VIEW_TYPE
    # The seed view names the tenant properties differently, so the Graph model keeps them in
    # additional_data. The SDK turns a GUID-shaped string there into a uuid.UUID.
    assert entity.tenant_id is None
    assert str(entity.additional_data["organizationId"]) == "4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a"
    assert entity.additional_data["organizationDisplayName"] == "Contoso Ltd"
    assert entity.number_of_compliant_devices == 120
    assert entity.policy_modified_date_time == created.policy_modified_date_time
    assert entity.policy_modified_date_time.utcoffset() == datetime.timedelta(0)


async def test_containers_name_the_partner_tenant(client, tenant_id):
    relationships = await client.tenant_relationships.get()
    managed_tenants = await client.tenant_relationships.managed_tenants.get()

    assert str(relationships.additional_data["id"]) == tenant_id
    assert managed_tenants.id == tenant_id
