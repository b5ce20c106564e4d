"""Fixtures of the dashboard's browser test: one Beacon server with the known dataset, one
headless Chromium, and a fresh browser context (so a fresh session storage) per test.

The server is the binary from BEACON_BIN (which `run` sets), started by the Graph SDK suite's
`beacon_process` module with its default options, so the default rate limits apply.
"""

from __future__ import annotations

import datetime
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

SUITE = Path(__file__).resolve().parent
REPOSITORY = SUITE.parents[2]
sys.path.insert(0, str(SUITE.parent / "python"))

from beacon_process import BeaconServer  # noqa: E402

import dataset  # noqa: E402

READ_SCOPE = "DeviceManagementConfiguration.Read.All"

# Milliseconds that one browser action or wait may take; the page loads in well under one second.
ACTION_TIMEOUT_MS = 10_000

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}


@dataclass
class Deployment:
    """The running server, the partner whose data it stores, and read-only tokens."""

    server: BeaconServer
    partner: str
    token: str
    # A token of the partner whose rows are `dataset.demo_rows()`.
    demo_token: str
    # The time the dataset's refresh times were counted back from.
    now: datetime.datetime

    @property
    def dashboard_url(self) -> str:
        return f"{self.server.base_url}/dashboard"


@dataclass
class PageLog:
    """What a page did besides rendering: its requests and its console errors."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


def chromium_path() -> str:
    """The Chromium binary: CHROMIUM, else the binary behind Debian's /usr/bin/chromium."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured
    for candidate in ("/usr/lib/chromium/chromium", "/usr/bin/chromium"):
        if Path(candidate).is_file():
            return candidate
    pytest.fail("no Chromium found: run tests/clients/browser/setup or set CHROMIUM")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The folder that screenshots are saved in."""
    folder = Path(os.environ.get("BEACON_ARTIFACTS", REPOSITORY / "target" / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A Beacon server holding the dataset for one partner, a row of another partner, and the
    demo rows of a third."""
    binary = Path(os.environ.get("BEACON_BIN", REPOSITORY / "target" / "debug" / "beacon"))
    if not binary.is_file():
        pytest.fail(f"no beacon binary at {binary}: run 'cargo build -p beacon' or set BEACON_BIN")
    server = BeaconServer(binary, tmp_path_factory.mktemp("beacon-data"))
    try:
        partner = str(uuid.uuid4())
        now = datetime.datetime.now(datetime.timezone.utc)
        dataset.create_rows(server.base_url, server.mint_token(partner), dataset.ROWS, now)
        other = server.mint_token(str(uuid.uuid4()))
        dataset.create_rows(server.base_url, other, [dataset.OTHER_PARTNER_ROW], now)
        demo_partner = str(uuid.uuid4())
        demo_writer = server.mint_token(demo_partner)
        dataset.create_rows(server.base_url, demo_writer, dataset.demo_rows(), now)
        token = server.mint_token(partner, scopes=(READ_SCOPE,))
        demo_token = server.mint_token(demo_partner, scopes=(READ_SCOPE,))
        yield Deployment(server, partner, token, demo_token, now)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
    yield browser
    browser.close()


def new_page(browser: Browser, log: PageLog, **context_options: object) -> Page:
    """Open a page in a new context, in US English and UTC unless `context_options` set
    others, recording its requests and console errors in `log`."""
    options: dict[str, object] = {
        "locale": "en-US",
        "timezone_id": "UTC",
        "viewport": DESKTOP,
        "reduced_motion": "reduce",
    }
    options.update(context_options)
    context = browser.new_context(**options)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = context.new_page()
    page.on("request", lambda request: log.requests.append(request.url))

    def record_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            log.console_errors.append(message.text)

    page.on("console", record_console)
    page.on("pageerror", lambda error: log.console_errors.append(str(error)))
    return page


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(browser: Browser, page_log: PageLog) -> Iterator[Page]:
    """A desktop-sized page in a context of its own."""
    page = new_page(browser, page_log)
    yield page
    page.context.close()


def sign_in(page: Page, deployment: Deployment, token: str | None = None, query: str = "") -> None:
    """Open the dashboard, paste `token` (the deployment's by default) and wait for the figures."""
    page.goto(deployment.dashboard_url + query)
    page.get_by_label("Access token").fill(token if token is not None else deployment.token)
    page.get_by_role("button", name="Show dashboard").click()
    wait_until_ready(page)


def wait_until_ready(page: Page) -> None:
    """Wait until the page has rendered a complete load."""
    page.wait_for_selector("body[data-state=ready]")
