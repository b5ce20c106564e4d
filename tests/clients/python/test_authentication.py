"""Check how the SDK's authentication providers and Beacon's token checks work together.

The tests cover the allowed-hosts list, a read-only token, and the provider that
GraphServiceClient builds from an azure-identity credential, which sends tokens over plain
HTTP to loopback hosts only.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError

from graph_client import LOOPBACK_HOST, bearer_token_provider
from samples import windows_baseline

READ_ONLY = ("DeviceManagementConfiguration.Read.All",)


class FixedTokenCredential:
    """An azure-identity style credential (TokenCredential) that returns one token."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.requested_scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.requested_scopes.append(scopes)
        return AccessToken(self._token, int(time.time()) + 3600)


async def test_token_is_not_sent_to_unlisted_host(beacon, tenant_id, make_client):
    # `localhost` reaches the same server, but only 127.0.0.1 is on the allowed-hosts list.
    token = beacon.mint_token(tenant_id)
    unlisted_url = beacon.beta_url.replace(LOOPBACK_HOST, "localhost", 1)
    client = make_client(unlisted_url, bearer_token_provider(token))

    with pytest.raises(ODataError) as raised:
        await client.tenant_relationships.managed_tenants.aggregated_policy_compliances.get()

    assert raised.value.response_status_code == 401
    assert raised.value.error.code == "InvalidAuthenticationToken"
    assert raised.value.error.message


async def test_read_only_token_reads_but_cannot_create(beacon, tenant_id, make_client):
    token = beacon.mint_token(tenant_id, scopes=READ_ONLY)
    client = make_client(beacon.beta_url, bearer_token_provider(token))
    compliances = client.tenant_relationships.managed_tenants.aggregated_policy_compliances

    with pytest.raises(ODataError) as raised:
        await compliances.post(windows_baseline())

    assert raised.value.response_status_code == 403
    assert raised.value.error.code == "Authorization_RequestDenied"
    assert "DeviceManagementConfiguration.ReadWrite.All" in raised.value.error.message
    assert await compliances.count.get() == 0


async def test_azure_identity_provider_works_over_loopback_http(
    beacon, tenant_id, make_client
):
    credential = FixedTokenCredential(beacon.mint_token(tenant_id))
    auth_provider = AzureIdentityAuthenticationProvider(
        credential, scopes=["api://beacon/.default"], allowed_hosts=[LOOPBACK_HOST]
    )
    client = make_client(beacon.beta_url, auth_provider)
    compliances = client.tenant_relationships.managed_tenants.aggregated_policy_compliances

    created = await compliances.post(windows_baseline())

    assert created.tenant_display_name == "Contoso Ltd"
    assert await compliances.count.get() == 1
    assert credential.requested_scopes[0] == ("api://beacon/.default",)
