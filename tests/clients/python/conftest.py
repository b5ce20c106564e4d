"""Fixtures shared by the SDK tests: one Beacon server per session, one partner tenant per test.

Every test gets a fresh partner tenant id and a token for it, so each test starts with an empty
collection and its counts and pages are its own, although all tests share the server. The
binary comes from BEACON_BIN, which `run` sets; it defaults to target/debug/beacon.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from kiota_abstractions.authentication import AuthenticationProvider
from msgraph_beta import GraphServiceClient
from msgraph_beta.generated.tenant_relationships.managed_tenants.aggregated_policy_compliances.aggregated_policy_compliances_request_builder import (  # noqa: E501
    AggregatedPolicyCompliancesRequestBuilder,
)

from beacon_process import BeaconServer
from graph_client import bearer_token_provider, graph_client, new_http_client

REPOSITORY = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def beacon_binary() -> Path:
    """The beacon binary under test."""
    binary = Path(os.environ.get("BEACON_BIN", REPOSITORY / "target" / "debug" / "beacon"))
    if not binary.is_file():
        pytest.fail(f"no beacon binary at {binary}: run 'cargo build -p beacon' or set BEACON_BIN")
    return binary


@pytest.fixture(scope="session")
def beacon(beacon_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BeaconServer]:
    """A `beacon serve` process with the default options and an empty temporary data folder."""
    server = BeaconServer(beacon_binary, tmp_path_factory.mktemp("beacon-data"))
    yield server
    server.stop()


@pytest.fixture
def tenant_id() -> str:
    """A new partner tenant, whose data no other test sees."""
    return str(uuid.uuid4())


ClientFactory = Callable[[str, AuthenticationProvider], GraphServiceClient]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """A function that builds Graph clients, whose connections are closed after the test."""
    transports: list[httpx.AsyncHTTPTransport] = []

    def make(beta_url: str, auth_provider: AuthenticationProvider) -> GraphServiceClient:
        # HTTP/2 as in the SDK's own default client; over plain http the client uses HTTP/1.1.
        transport = httpx.AsyncHTTPTransport(http2=True)
        transports.append(transport)
        return graph_client(beta_url, auth_provider, new_http_client(transport))

    yield make
    for transport in transports:
        await transport.aclose()


@pytest.fixture
def client(beacon: BeaconServer, tenant_id: str, make_client: ClientFactory) -> GraphServiceClient:
    """A Graph client with a read-write token for the test's partner tenant."""
    token = beacon.mint_token(tenant_id)
    return make_client(beacon.beta_url, bearer_token_provider(token))


@pytest.fixture
def compliances(client: GraphServiceClient) -> AggregatedPolicyCompliancesRequestBuilder:
    """The Graph view's collection, as the SDK's fluent API reaches it."""
    return client.tenant_relationships.managed_tenants.aggregated_policy_compliances
