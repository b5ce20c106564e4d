"""schemathesis hooks for the API test that `run` beside this file starts.

`beacon serve` with its default limits rejects a URL longer than 16384 bytes with its own
`414` and the Graph error body, which the description covers. hyper, the HTTP parser in front
of Beacon, rejects a request head (request line and headers) longer than 65536 bytes before
any Beacon code runs, with a bare `431` and no body, which the description leaves out. A
generated value can be long enough for that: `$filter` may have up to 8192 characters, each
character can take 12 bytes once percent-encoded, and negative cases go past the 8192.

`filter_case` therefore drops every case whose request head would be longer than
`MAX_HEAD_BYTES`, which lies between the two limits: Beacon's own `414` and `431` are still
tested, and hyper's bare status is never reached.
"""

import requests

import schemathesis

# Three times Beacon's default URL limit, and 16384 bytes below hyper's head limit, which leaves
# room for the headers that the HTTP client adds (Host, User-Agent, Authorization and others).
MAX_HEAD_BYTES = 49152


@schemathesis.hook
def filter_case(context, case):
    """Keep `case` only when its request head fits in `MAX_HEAD_BYTES`."""
    kwargs = case.as_transport_kwargs(base_url="http://127.0.0.1:1")
    request = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        params=kwargs.get("params"),
        headers=kwargs.get("headers"),
    ).prepare()
    target = request.path_url
    request_line = len(request.method) + len(target) + len("  HTTP/1.1\r\n")
    header_lines = sum(
        len(name) + len(str(value)) + len(": \r\n") for name, value in request.headers.items()
    )
    return request_line + header_lines <= MAX_HEAD_BYTES
