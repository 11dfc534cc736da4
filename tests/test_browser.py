"""The pages people see, in a real headless Chromium (Debian's chromium and chromedriver,
driven by selenium) against the app under uvicorn in a process of its own, on this run's
database: the unsubscribe link of a campaign message really sent into the Maildir, followed, pressed
and confirmed; and GraphiQL at /graphql, loading its files from the server and running a
query.

Without Chromium the browser tests are skipped, except with CI=true, where they are required."""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from api import graphiql
from api.audiences.models import SendAccount
from api.audiences.service import system_audience
from api.campaigns import dispatch, sender
from api.campaigns import service as campaigns
from api.campaigns.models import CampaignBatch, Delivery
from api.contacts.models import Contact
from api.contacts.service import ContactFields, create_contact
from api.core.settings import get_settings
from tests.conftest import PASSWORD, make_office, make_user

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CI = os.environ.get("CI", "").lower() == "true"
HAVE_CHROMIUM = CHROMIUM.exists() and CHROMEDRIVER.exists()

needs_chromium = pytest.mark.skipif(
    not HAVE_CHROMIUM and not CI,
    reason="Debian's chromium and chromium-driver are not installed"
    " (apt-get install chromium chromium-driver); CI=true requires them",
)

# One unbroken word wider than a phone: the page has to wrap it rather than widen.
DOMAIN = "mail.harbourandhillresidentiallettingsandsales.example"
BODY = (
    "<p>Hello {{first_name}},</p><p>Three new homes from {{office_name}} this week.</p>"
    '<p><a href="https://example.com/listing/1">See the listings</a></p>'
)
PHONE = {"width": 360, "height": 740, "deviceScaleFactor": 2, "mobile": True}
WAIT_SECONDS = 30


@dataclass
class Server:
    base_url: str
    log: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until(ready: Callable[[], bool], seconds: float, failure: Callable[[], str]) -> None:
    """Poll `ready` until it holds; fail with `failure()` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(failure())
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app under uvicorn on a free port, as `crm serve` runs it but without the embedded
    worker and clock (tests/web_app.py says why): this run's DATABASE_URL, DATA_DIR and
    SECRET_KEY (the test process's environment), and PUBLIC_BASE_URL pointing at itself."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("server") / "server.log"
    # GraphiQL loads the schema by introspection, off by default with PostgreSQL.
    env = {**os.environ, "PUBLIC_BASE_URL": base_url, "GRAPHQL_INTROSPECTION": "true"}
    app = "tests.web_app:web_only"
    command = [sys.executable, "-m", "uvicorn", "--factory", app, "--port", str(port)]
    with log.open("w") as output:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)

    def answers() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        _wait_until(answers, 60, lambda: f"the server did not answer:\n{log.read_text()}")
        yield Server(base_url, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if not HAVE_CHROMIUM:
        pytest.fail(f"CI=true needs {CHROMIUM} and {CHROMEDRIVER} (Debian's chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # Chromium's sandbox refuses to run as root, as CI does
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--lang=en",
    ):
        options.add_argument(argument)
    # The given chromedriver: selenium then downloads nothing.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: webdriver.Chrome) -> WebDriverWait:
    return WebDriverWait(driver, WAIT_SECONDS)


def page_state(driver: webdriver.Chrome) -> dict[str, Any]:
    return driver.execute_script(
        """
        const viewport = document.querySelector('meta[name="viewport"]');
        return {
          lang: document.documentElement.lang,
          title: document.title,
          viewport: viewport ? viewport.content : null,
          scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth,
        };"""
    )


class _Links(HTMLParser):
    """The hrefs of <a> tags, with their text."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href, self._text = dict(attrs).get("href"), []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.found.append(("".join(self._text).strip(), self._href))
            self._href = None


def sent_message(campaign_id: int) -> email.message.EmailMessage:
    """The campaign's one message in the Maildir under DATA_DIR."""
    box = mailbox.Maildir(get_settings().data_dir / "maildir", create=True)
    found = []
    for key in box.iterkeys():
        with box.get_file(key) as f:
            message = email.message_from_binary_file(f, policy=email.policy.default)
        if f"<c{campaign_id}." in (message["Message-ID"] or ""):
            found.append(message)
    assert len(found) == 1, f"{len(found)} messages of campaign {campaign_id} in the Maildir"
    return found[0]


async def send_office_campaign(admin: Any) -> int:
    """An OFFICE campaign to the office's contacts, sent here as the workers would."""
    audience = await system_audience(admin.office_id, SendAccount.OFFICE, None, "all")
    draft = campaigns.CampaignDraft(
        name="Spring listings",
        subject="New homes for you, {{first_name}}",
        body_html=BODY,
        audience_id=audience.id,
    )
    campaign = await campaigns.create_campaign(admin, SendAccount.OFFICE, draft)
    await campaigns.send_campaign(admin, campaign.id)
    await dispatch.dispatch(campaign.id)
    for batch_id in await CampaignBatch.filter(campaign_id=campaign.id).values_list(
        "id", flat=True
    ):
        await sender.send_batch(batch_id)
    return campaign.id


@needs_chromium
async def test_unsubscribe_from_a_sent_message_in_a_browser(
    server: Server, browser: webdriver.Chrome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R17 as a person meets it: the link of a message sent into the Maildir opens a page in
    the office's name that changes nothing, fits a phone, and whose button unsubscribes."""
    monkeypatch.setattr(get_settings(), "public_base_url", server.base_url)
    office = await make_office(f"Harbour & Hill Homes {uuid.uuid4().hex[:6]}")
    admin = await make_user(office, "ADMIN")
    address = f"ada.lovelace.{uuid.uuid4().hex[:6]}@{DOMAIN}"
    contact = await create_contact(
        admin, ContactFields(first_name="Ada", last_name="Lovelace", email=address)
    )
    campaign_id = await send_office_campaign(admin)

    message = sent_message(campaign_id)
    html = message.get_body(("html",)).get_content()
    parser = _Links()
    parser.feed(html)
    [link] = [href for text, href in parser.found if text == "Unsubscribe"]
    assert link.startswith(f"{server.base_url}/u/")
    assert str(message["List-Unsubscribe"]) == f"<{link}>"

    # Opening the link shows the question and changes nothing (mail scanners open links).
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        browser.get(link)
        heading = wait(browser).until(ec.visibility_of_element_located((By.TAG_NAME, "h1")))
        assert heading.text == f"Unsubscribe from {office.name} emails"
        state = page_state(browser)
        assert state["lang"] == "en"
        assert state["title"] == f"Unsubscribe from {office.name} emails"
        assert "width=device-width" in state["viewport"]
        # At a phone's width nothing reaches past the screen: no sideways scrolling.
        assert state["innerWidth"] == PHONE["width"]
        assert state["scrollWidth"] <= state["innerWidth"], state
        body = browser.find_element(By.TAG_NAME, "main").text
        assert f"a***@{DOMAIN}" in body and address not in body
        button = browser.find_element(By.CSS_SELECTOR, "form[method=post] button[type=submit]")
        assert button.text == "Unsubscribe" and button.is_enabled()
        # A thumb-sized target, fully on screen.
        assert button.rect["height"] >= 44
        assert button.rect["x"] >= 0 and button.rect["x"] + button.rect["width"] <= PHONE["width"]
        assert not (await Contact.get(id=contact.id)).unsubscribed
        assert (await Delivery.get(contact_id=contact.id)).unsubscribed_at is None

        button.click()
        wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "unsubscribed"))
        assert browser.find_element(By.TAG_NAME, "h1").text == "You are unsubscribed"
        confirmation = browser.find_element(By.TAG_NAME, "main").text
        assert f"a***@{DOMAIN}" in confirmation and office.name in confirmation
        assert browser.title == f"Unsubscribed from {office.name} emails"
        state = page_state(browser)
        assert state["scrollWidth"] <= state["innerWidth"], state
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    assert (await Contact.get(id=contact.id)).unsubscribed
    assert (await Delivery.get(contact_id=contact.id)).unsubscribed_at is not None


@needs_chromium
async def test_graphiql_loads_from_the_server_and_runs_a_query(
    server: Server, browser: webdriver.Chrome
) -> None:
    """GraphiQL at /graphql loads its scripts and styles from this server (no CDN: the
    machine may have no internet) and runs a login mutation, showing its result."""
    assert graphiql.present(), (
        f"GraphiQL's files are not in {graphiql.ASSETS_DIR}: run `make graphiql`"
        " (python -m api.graphiql fetch, which needs npm)"
    )
    office = await make_office()
    admin = await make_user(office, "ADMIN")
    query = (
        f'mutation {{ login(email: "{admin.email}", password: "{PASSWORD}")'
        " { user { email role } } }"
    )
    browser.get(f"{server.base_url}/graphql?q={quote(query)}")
    run = wait(browser).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, ".graphiql-execute-button"))
    )
    assert browser.title == "Strawberry GraphiQL"
    run.click()
    wait(browser).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".graphiql-response"), admin.email)
    )
    assert '"role": "ADMIN"' in browser.find_element(By.CSS_SELECTOR, ".graphiql-response").text

    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assets = [url for url in loaded if url.endswith((".js", ".css"))]
    assert len(assets) == len(graphiql.assets()), loaded
    assert all(url.startswith(f"{server.base_url}/graphiql/") for url in assets), loaded


async def test_graphiql_page_loads_fetched_files_from_here_and_nothing_else_is_served(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Until its files are fetched the page is Strawberry's own (CDN); then it names them
    under /graphiql/, where only those files are served."""
    monkeypatch.setattr(graphiql, "ASSETS_DIR", tmp_path)
    as_browser = {"Accept": "text/html"}
    cdn_page = (await client.get("/graphql", headers=as_browser)).text
    assert "https://unpkg.com/" in cdn_page and 'src="/graphiql/' not in cdn_page

    for asset in graphiql.assets():
        (tmp_path / asset.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / asset.path).write_text(f"/* {asset.path} */")
    (tmp_path / "secret.txt").write_text("not one of GraphiQL's files")
    page = (await client.get("/graphql", headers=as_browser)).text
    assert "unpkg.com" not in page
    for asset in graphiql.assets():
        assert f'="/graphiql/{asset.path}"' in page
    script = next(a for a in graphiql.assets() if a.file.endswith(".js"))
    served = await client.get(f"/graphiql/{script.path}")
    assert served.status_code == 200 and served.text == f"/* {script.path} */"
    assert "javascript" in served.headers["content-type"]
    assert (await client.get("/graphiql/secret.txt")).status_code == 404
