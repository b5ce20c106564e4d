"""Build a Graph beta SDK client that talks to Beacon, configured the way the SDK supports.

The SDK sends requests through a request adapter whose `base_url` replaces
`https://graph.microsoft.com/beta`, and adds the bearer token through an authentication
provider. The HTTPS rule lives in `AzureIdentityAccessTokenProvider` of
microsoft-kiota-authentication-azure, which rejects `http` except for loopback hosts. That
provider implements `AccessTokenProvider`, a contract of the kiota abstractions, and
`BaseBearerTokenAuthenticationProvider` accepts any implementation of it. So this module
supplies its own implementation. It returns Beacon's token for the hosts on its
`AllowedHostsValidator` and an empty string for every other host, which keeps the token on
loopback without touching the SDK's internals.
"""

from __future__ import annotations

from typing import Any

import httpx
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    AuthenticationProvider,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_http.kiota_client_factory import DEFAULT_CONNECTION_TIMEOUT, DEFAULT_REQUEST_TIMEOUT
from msgraph_beta import GraphRequestAdapter, GraphServiceClient
from msgraph_beta.graph_request_adapter import options as GRAPH_BETA_MIDDLEWARE_OPTIONS
from msgraph_core import APIVersion, GraphClientFactory

# The only host that gets the token. The server listens on it, and so no test sends a token
# anywhere else.
LOOPBACK_HOST = "127.0.0.1"


class StaticTokenProvider(AccessTokenProvider):
    """An access token provider that hands one fixed token to the allowed hosts only."""

    def __init__(self, token: str, allowed_hosts: list[str]) -> None:
        self._token = token
        self._allowed_hosts = AllowedHostsValidator(allowed_hosts)

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] = {}
    ) -> str:
        # An empty token makes BaseBearerTokenAuthenticationProvider send no Authorization
        # header, as the SDK's own providers do for hosts outside the list.
        if not self._allowed_hosts.is_url_host_valid(uri):
            return ""
        return self._token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._allowed_hosts


def bearer_token_provider(token: str) -> AuthenticationProvider:
    """Return an authentication provider that sends `token` to the loopback host only."""
    return BaseBearerTokenAuthenticationProvider(StaticTokenProvider(token, [LOOPBACK_HOST]))


def new_http_client(transport: httpx.AsyncHTTPTransport) -> httpx.AsyncClient:
    """Return an HTTP client on `transport` with the timeouts and middleware that
    GraphRequestAdapter gives the client it creates when it is given none.

    NOTE: msgraph-core 1.5.2 wraps the transport in its AsyncGraphTransport, which has no
    aclose(), so closing the returned client leaves its connections open. The caller owns
    `transport` and closes it instead.
    """
    timeout = httpx.Timeout(DEFAULT_REQUEST_TIMEOUT, connect=DEFAULT_CONNECTION_TIMEOUT)
    return GraphClientFactory.create_with_default_middleware(
        api_version=APIVersion.beta,
        client=httpx.AsyncClient(transport=transport, timeout=timeout),
        options=GRAPH_BETA_MIDDLEWARE_OPTIONS,
    )


def graph_client(
    beta_url: str, auth_provider: AuthenticationProvider, http_client: httpx.AsyncClient
) -> GraphServiceClient:
    """Return a GraphServiceClient whose requests go to `beta_url` (a `.../beta` root)."""
    adapter = GraphRequestAdapter(auth_provider, client=http_client)
    adapter.base_url = beta_url
    return GraphServiceClient(request_adapter=adapter)
