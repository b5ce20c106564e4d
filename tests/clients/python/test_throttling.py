"""Check that the SDK's retry handler honours Beacon's `429 Too Many Requests` responses.

These tests use a second server whose partner rate limit is one request a second with no burst,
so that a tenant's second request in a row is throttled with `Retry-After: 1`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import RetryHandlerOption
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError

from beacon_process import BeaconServer
from graph_client import bearer_token_provider
from samples import windows_baseline


@pytest.fixture(scope="module")
def throttled_beacon(beacon_binary, tmp_path_factory) -> Iterator[BeaconServer]:
    server = BeaconServer(
        beacon_binary,
        tmp_path_factory.mktemp("throttled-beacon-data"),
        extra_args=("--rate-limit", "1", "--rate-burst", "1"),
    )
    yield server
    server.stop()


@pytest.fixture
def throttled_compliances(throttled_beacon, tenant_id, make_client):
    token = throttled_beacon.mint_token(tenant_id)
    client = make_client(throttled_beacon.beta_url, bearer_token_provider(token))
    return client.tenant_relationships.managed_tenants.aggregated_policy_compliances


async def test_throttled_create_is_retried_once(throttled_beacon, throttled_compliances):
    body = windows_baseline()
    # The count takes the tenant's only token, so the create right after it is throttled.
    assert await throttled_compliances.count.get() == 0
    throttled_before = throttled_beacon.count_responses(429)

    created = await throttled_compliances.post(body)

    assert created.tenant_display_name == "Contoso Ltd"
    assert throttled_beacon.count_responses(429) == throttled_before + 1
    assert await throttled_compliances.count.get() == 1


async def test_throttled_request_without_retries_fails(throttled_compliances):
    no_retries = RequestConfiguration(options=[RetryHandlerOption(max_retries=0)])
    await throttled_compliances.count.get(no_retries)

    with pytest.raises(ODataError) as raised:
        await throttled_compliances.count.get(no_retries)

    assert raised.value.response_status_code == 429
    assert raised.value.error.code == "TooManyRequests"
    assert raised.value.response_headers["retry-after"] == "1"
