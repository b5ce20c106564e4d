"""Create, read, update and delete one entry through the SDK's fluent API.

Each check reads values as a Graph user's code does: Int64 counters as Python ints,
DateTimeOffset values as timezone-aware datetimes, and failures as the SDK's ODataError with its
parsed `error` object.
"""

from __future__ import annotations

import datetime
import uuid

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph_beta.generated.models.managed_tenants.aggregated_policy_compliance import (
    AggregatedPolicyCompliance,
)
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError

from samples import GRAPH_VIEW_TYPE, UTC, windows_baseline

INT64_MAX = 2**63 - 1


def is_guid(text: str | None) -> bool:
    try:
        return text is not None and str(uuid.UUID(text)) == text
    except ValueError:
        return False


async def test_create_returns_typed_values(compliances):
    created = await compliances.post(windows_baseline())

    assert isinstance(created, AggregatedPolicyCompliance)
    assert is_guid(created.id)
    assert created.odata_type == GRAPH_VIEW_TYPE
    assert created.tenant_id == "4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a"
    assert created.tenant_display_name == "Contoso Ltd"
    assert created.compliance_policy_id == "0c4bd1d4-1d3f-4b86-8b93-3f0a5d0e5c21"
    assert created.compliance_policy_name == "Windows 10 baseline"
    assert created.compliance_policy_type == "deviceCompliancePolicy"
    assert created.compliance_policy_platform == "windows10AndLater"

    # type() rather than isinstance(), because bool is a subclass of int.
    assert type(created.number_of_compliant_devices) is int
    assert created.number_of_compliant_devices == 120
    assert type(created.number_of_non_compliant_devices) is int
    assert created.number_of_non_compliant_devices == 7
    assert type(created.number_of_error_devices) is int
    assert created.number_of_error_devices == 1

    assert created.policy_modified_date_time == datetime.datetime(2024, 2, 12, 9, 15, tzinfo=UTC)
    assert created.policy_modified_date_time.utcoffset() == datetime.timedelta(0)
    # Sent as 07:30:00.25+02:00: the same instant comes back in UTC, with its fraction.
    assert created.last_refreshed_date_time == datetime.datetime(
        2024, 3, 1, 5, 30, 0, 250000, tzinfo=UTC
    )
    assert created.last_refreshed_date_time.utcoffset() == datetime.timedelta(0)

    assert created.additional_data["@odata.etag"].startswith('W/"')


async def test_get_by_id_returns_created_entity(compliances):
    created = await compliances.post(windows_baseline())

    read = await compliances.by_aggregated_policy_compliance_id(created.id).get()

    assert read.id == created.id
    assert read.tenant_display_name == "Contoso Ltd"
    assert read.number_of_compliant_devices == 120
    assert read.policy_modified_date_time == created.policy_modified_date_time
    assert read.last_refreshed_date_time == created.last_refreshed_date_time
    assert read.last_refreshed_date_time.tzinfo is not None
    assert read.additional_data["@odata.etag"] == created.additional_data["@odata.etag"]


async def test_get_by_id_applies_select(compliances):
    created = await compliances.post(windows_baseline())
    item = compliances.by_aggregated_policy_compliance_id(created.id)
    query = item.AggregatedPolicyComplianceItemRequestBuilderGetQueryParameters(
        select=["tenantDisplayName", "numberOfErrorDevices"]
    )

    read = await item.get(RequestConfiguration(query_parameters=query))

    assert read.id == created.id
    assert read.tenant_display_name == "Contoso Ltd"
    assert read.number_of_error_devices == 1
    assert read.compliance_policy_name is None
    assert read.number_of_compliant_devices is None


async def test_int64_extremes_round_trip_exactly(compliances):
    # 2**53 + 1 is the first integer that a JSON parser using doubles would change.
    created = await compliances.post(
        windows_baseline(
            number_of_compliant_devices=INT64_MAX,
            number_of_non_compliant_devices=2**53 + 1,
            number_of_error_devices=0,
        )
    )

    read = await compliances.by_aggregated_policy_compliance_id(created.id).get()

    assert type(read.number_of_compliant_devices) is int
    assert read.number_of_compliant_devices == INT64_MAX
    assert read.number_of_non_compliant_devices == 2**53 + 1
    assert read.number_of_error_devices == 0


async def test_naive_datetime_is_rejected(compliances):
    # The SDK writes a datetime without tzinfo with no offset, which a DateTimeOffset needs.
    naive = datetime.datetime(2024, 3, 1, 7, 30)

    with pytest.raises(ODataError) as raised:
        await compliances.post(windows_baseline(last_refreshed_date_time=naive))

    assert raised.value.response_status_code == 400
    assert raised.value.error.code == "BadRequest"
    assert "lastRefreshedDateTime" in raised.value.error.message
    assert await compliances.count.get() == 0


async def test_patch_changes_only_sent_properties(compliances):
    created = await compliances.post(windows_baseline())
    item = compliances.by_aggregated_policy_compliance_id(created.id)
    refreshed = datetime.datetime(2024, 3, 2, 7, 30, tzinfo=UTC)

    result = await item.patch(
        AggregatedPolicyCompliance(number_of_error_devices=0, last_refreshed_date_time=refreshed)
    )
    read = await item.get()

    # PATCH returns 204 No Content, which the SDK turns into None.
    assert result is None
    assert read.number_of_error_devices == 0
    assert read.last_refreshed_date_time == refreshed
    assert read.number_of_compliant_devices == 120
    assert read.number_of_non_compliant_devices == 7
    assert read.tenant_display_name == "Contoso Ltd"
    assert read.policy_modified_date_time == created.policy_modified_date_time
    assert read.additional_data["@odata.etag"] != created.additional_data["@odata.etag"]


async def test_patch_accepts_entity_read_back(compliances):
    # A common SDK pattern: read an entity, change a field, and send the whole model back. Its
    # body then also carries `id`, `@odata.context` and `@odata.etag` from the read.
    created = await compliances.post(windows_baseline())
    item = compliances.by_aggregated_policy_compliance_id(created.id)
    read = await item.get()
    read.number_of_error_devices = 9

    await item.patch(read)
    read_again = await item.get()

    assert read_again.id == created.id
    assert read_again.number_of_error_devices == 9
    assert read_again.last_refreshed_date_time == created.last_refreshed_date_time


async def test_patch_with_representation_returns_entity(compliances):
    created = await compliances.post(windows_baseline())
    config = RequestConfiguration()
    config.headers.add("Prefer", "return=representation")

    updated = await compliances.by_aggregated_policy_compliance_id(created.id).patch(
        AggregatedPolicyCompliance(number_of_non_compliant_devices=3), config
    )

    assert updated.id == created.id
    assert updated.number_of_non_compliant_devices == 3
    assert updated.number_of_compliant_devices == 120


async def test_patch_with_stale_etag_fails(compliances):
    created = await compliances.post(windows_baseline())
    item = compliances.by_aggregated_policy_compliance_id(created.id)
    config = RequestConfiguration()
    config.headers.add("If-Match", created.additional_data["@odata.etag"])
    await item.patch(AggregatedPolicyCompliance(number_of_error_devices=2), config)

    with pytest.raises(ODataError) as raised:
        await item.patch(AggregatedPolicyCompliance(number_of_error_devices=3), config)

    assert raised.value.response_status_code == 412
    assert raised.value.error.code == "PreconditionFailed"
    assert (await item.get()).number_of_error_devices == 2


async def test_get_after_delete_raises_not_found(compliances):
    created = await compliances.post(windows_baseline())
    item = compliances.by_aggregated_policy_compliance_id(created.id)
    client_request_id = str(uuid.uuid4())
    config = RequestConfiguration()
    config.headers.add("client-request-id", client_request_id)

    deleted = await item.delete()
    with pytest.raises(ODataError) as raised:
        await item.get(config)

    assert deleted is None
    error = raised.value
    assert error.response_status_code == 404
    assert error.error.code == "ResourceNotFound"
    assert created.id in error.error.message
    assert error.error.inner_error.client_request_id == client_request_id
    assert is_guid(error.error.inner_error.request_id)
    assert error.error.inner_error.request_id == error.response_headers["request-id"]
    assert error.error.inner_error.date.tzinfo is not None


async def test_second_delete_raises_not_found(compliances):
    created = await compliances.post(windows_baseline())
    item = compliances.by_aggregated_policy_compliance_id(created.id)
    await item.delete()

    with pytest.raises(ODataError) as raised:
        await item.delete()

    assert raised.value.response_status_code == 404
    assert raised.value.error.code == "ResourceNotFound"


# Ids that the SDK must percent-encode in the path. The ids `.` and `..` and ids that start with
# `$` are left out. HTTP clients drop dot segments, and a leading `$` names a system segment such
# as `$count`, so Beacon reaches those ids only as `collection('{id}')`. The fluent API does not
# build that form.
@pytest.mark.parametrize(
    "entity_id",
    ["policy/42", "with space", "100%", "O'Brien", "q?x#y", "a+b", "café ☃"],
)
async def test_reserved_characters_in_id_round_trip(compliances, entity_id):
    created = await compliances.post(windows_baseline(id=entity_id))
    item = compliances.by_aggregated_policy_compliance_id(entity_id)

    read = await item.get()
    await item.patch(AggregatedPolicyCompliance(number_of_error_devices=5))
    patched = await item.get()
    await item.delete()

    assert created.id == entity_id
    assert read.id == entity_id
    assert patched.number_of_error_devices == 5
    assert await compliances.count.get() == 0
