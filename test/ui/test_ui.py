"""The web management UI in a real browser: Debian's chromium, headless,
driven by python3-selenium through /usr/bin/chromedriver, against a real
Warren started as the wire tests start it (ephemeral AMQP and management
ports, a temp data dir; test/wire/conftest.py's helpers).

One scenario, in order (pytest -x stops at the first failing step):
log in (a wrong password first: the login form shows the API's reason),
the overview, create a queue with a hostile name through the Queues form,
publish through the queue page's form and with pika until the queue
page's publish rate moves, get the message back through the Get form,
see a consumer and add a binding on the queue page, purge it, delete the
queue, page, sort and filter 25 queues and then 100,000 (imported
through the API into a vhost of their own), then every other page, and add, edit and delete a user, a vhost,
a permission and a policy through the Admin forms. The browser console must stay
free of errors throughout (the one expected 401 of the wrong password
aside). A screenshot of each page goes to $WARREN_UI_OUTPUT (ctest sets
build/test-output/ui).

Chromium, chromedriver or selenium missing is a failure, not a skip: CI
installs them (.ci/deps).
"""

import base64
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import warnings

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "wire"))

import conftest as wire  # noqa: E402  test/wire/conftest.py: new_warren

with warnings.catch_warnings():
    # its pytestmark names the wire tests' marker, registered by their
    # conftest's hook, which does not run here
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    from test_20_mgmt_api import MGMT_CONF, Mgmt, http_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,900",
]
WAIT = 10.0  # seconds for the page to show what an action produced
RATE_WAIT = 25.0  # statistics are sampled every 5 s; the UI polls every 5 s
# Hostile on purpose: the UI must show it as text, never as markup.
QUEUE = 'ui <i>q</i> & "x"'
PAYLOAD = "hello from the UI <b>not bold</b>"
IMPORTED_VHOST = "ui-imported"

try:
    from selenium import webdriver
    from selenium.common.exceptions import (NoSuchElementException,
                                            StaleElementReferenceException,
                                            WebDriverException)
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError as e:  # reported by the browser fixture
    webdriver = None
    SELENIUM_ERROR = e


def output_dir():
    """The screenshot folder, emptied of an earlier run's pictures."""
    d = os.environ.get("WARREN_UI_OUTPUT") or os.path.join(
        HERE, "..", "..", "build", "test-output", "ui")
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.endswith(".png"):
            os.remove(os.path.join(d, f))
    return d


# ---------------------------------------------------------------------------
# fixtures: one broker, one browser for the whole scenario
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = wire.new_warren(str(tmp_path_factory.mktemp("ui")), MGMT_CONF)
    yield b
    wire.stop_checked(b)


@pytest.fixture(scope="module")
def base_url(broker):
    return "http://127.0.0.1:%d/" % http_port(broker)


@pytest.fixture(scope="module")
def api(broker):
    return Mgmt(http_port(broker))


class Browser:
    """The driver plus the console entries seen so far and screenshots."""

    def __init__(self, driver, out):
        self.d = driver
        self.out = out
        self.console = []
        self.shots = 0

    def logs(self):
        """Console entries since the last call, kept in self.console."""
        new = self.d.get_log("browser")
        self.console += new
        return new

    def screenshot(self, name):
        """The whole page (beyond the viewport) as NN-name.png."""
        self.shots += 1
        m = self.d.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = m["cssContentSize"]
        shot = self.d.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"],
                     "height": size["height"], "scale": 1}})
        path = os.path.join(self.out, "%02d-%s.png" % (self.shots, name))
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return path


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing or webdriver is None:
        pytest.fail("the UI test needs Debian's chromium, chromium-driver and "
                    "python3-selenium (apt-get install chromium "
                    "chromium-driver python3-selenium); missing: %s"
                    % (missing or SELENIUM_ERROR))
    profile = tempfile.mkdtemp(prefix="warren-ui-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + ["--user-data-dir=" + profile]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        b = Browser(driver, output_dir())
        b.downloads = os.path.join(profile, "downloads")
        os.makedirs(b.downloads)
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": b.downloads})
        yield b
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def wait_for(b, fn, timeout=WAIT, what="condition"):
    """fn(driver) until truthy (DOM churn from the 5 s refresh retried)."""
    def attempt(d):
        try:
            return fn(d)
        except (NoSuchElementException, StaleElementReferenceException):
            return False
    try:
        return WebDriverWait(b.d, timeout, 0.1).until(attempt)
    except WebDriverException:
        raise AssertionError("timed out after %.0fs waiting for %s\nflash: %r"
                             % (timeout, what, flash_text(b)))


def css(b, selector):
    return b.d.find_element(By.CSS_SELECTOR, selector)


def flash_text(b, kind="flash"):
    """The message shown in the flash area ("error": only an error)."""
    try:
        el = css(b, "#flash")
        shown = el.is_displayed() and kind in el.get_attribute("class")
        return el.text if shown else ""
    except WebDriverException:
        return ""


def wait_flash(b, text):
    wait_for(b, lambda d: text in flash_text(b), what="flash %r" % text)


def go(b, base_url, hash_, heading):
    """Opens a page by its hash route and waits for its heading."""
    b.d.get(base_url + "#/" + hash_)
    wait_for(b, lambda d: css(b, "main h1").text.startswith(heading),
             what="page heading %r" % heading)


def wait_list_loaded(b):
    wait_for(b, lambda d: css(b, ".list-controls .count").text != "",
             what="a list to load")


def open_section(b, title):
    """Opens a collapsed <details> section by its summary text."""
    for s in b.d.find_elements(By.CSS_SELECTOR, "details.section > summary"):
        if s.text.strip() == title:
            details = s.find_element(By.XPATH, "..")
            if details.get_attribute("open") is None:
                s.click()
            return details
    raise AssertionError("no section %r" % title)


def fill(form, name, value):
    el = form.find_element(By.NAME, name)
    el.clear()
    el.send_keys(value)


def click(b, selector):
    """Clicks, again if the 5 s refresh replaced the element first."""
    wait_for(b, lambda d: css(b, selector).click() or True,
             what="a click on %s" % selector)


def sort_by(b, key, order):
    """Clicks a sortable column's header; waits for the order shown."""
    th = "th[data-sort='%s']" % key
    click(b, th)
    wait_for(b, lambda d: "sorted " + order in css(b, th).get_attribute(
        "class"), what="sorted %s by %s" % (order, key))


def sort_to(b, key, order):
    """Sorts by a column in the given order, from whatever order the list
    remembers (sort_by assumes a click changes it)."""
    th = "th[data-sort='%s']" % key
    for _ in range(3):
        if "sorted " + order in css(b, th).get_attribute("class"):
            return
        before = css(b, th).get_attribute("class")
        click(b, th)
        wait_for(b, lambda d: css(b, th).get_attribute("class") != before,
                 what="the sort of %s to change" % key)
    raise AssertionError("cannot sort %s by %s" % (order, key))


def severe(entries):
    return [e for e in entries if e.get("level") == "SEVERE"]


def queue_hash(name):
    q = urllib.parse.quote(name, safe="")
    return "queues/%%2F/%s" % q


class Publisher(threading.Thread):
    """pika publishes to the default exchange, about 50 msg/s, until
    stopped."""

    def __init__(self, broker, queue):
        super().__init__(daemon=True)
        self.broker = broker
        self.queue = queue
        self.stop = threading.Event()
        self.count = 0
        self.error = None

    def run(self):
        try:
            conn = self.broker.pika()
            ch = conn.channel()
            while not self.stop.is_set():
                ch.basic_publish("", self.queue, b"rate")
                self.count += 1
                conn.process_data_events(0.02)
            conn.close()
        except Exception as e:  # reported by the test
            self.error = e


# ---------------------------------------------------------------------------
# the scenario
# ---------------------------------------------------------------------------


def test_01_login(browser, base_url):
    b = browser
    b.d.get(base_url)
    user = wait_for(b, lambda d: css(b, "#login-username"),
                    what="the login form")
    assert user.is_displayed()
    assert not css(b, "#app").is_displayed()
    b.screenshot("login")

    # a wrong password: the API's reason on the login form
    user.send_keys("guest")
    css(b, "#login-password").send_keys("wrong")
    css(b, "#login-form button[type=submit]").click()
    err = wait_for(b, lambda d: css(b, "#login-error").is_displayed() and
                   css(b, "#login-error"), what="the login error")
    assert err.text == "Login failed"
    b.screenshot("login-failed")
    # that 401 is the one console error this test expects: drop it
    expected = severe(b.d.get_log("browser"))
    assert all("401" in e["message"] for e in expected), expected

    css(b, "#login-username").clear()
    css(b, "#login-username").send_keys("guest")
    css(b, "#login-password").send_keys("guest")
    css(b, "#login-form button[type=submit]").click()
    wait_for(b, lambda d: css(b, "#whoami").text == "guest",
             what="the header's user name")
    assert not css(b, "#login").is_displayed()
    assert severe(b.logs()) == []


def test_02_overview(browser, base_url):
    b = browser
    go(b, base_url, "", "Overview")
    wait_for(b, lambda d: css(b, "[data-count=exchanges] .value").text == "7",
             what="the exchange count")
    wait_for(b, lambda d: "warren@" in css(b, "#node").text,
             what="the node section")
    assert css(b, "#chart-rates canvas").size["width"] > 200
    legend = css(b, "#chart-rates .legend").text
    assert "Publish" in legend and "/s" in legend
    # queue totals, the other live chart
    assert css(b, "#chart-queued canvas").size["width"] > 200
    legend = css(b, "#chart-queued .legend").text
    assert "Ready" in legend and "Unacked" in legend, legend
    assert css(b, "#tabs a.active").text == "Overview"
    b.screenshot("overview")


def test_03_definitions_export_and_import(browser, api, tmp_path):
    b = browser
    css(b, "#export").click()
    wait_flash(b, "Definitions exported.")
    path = wait_for(b, lambda d: [os.path.join(b.downloads, f) for f in
                                  os.listdir(b.downloads)
                                  if f.endswith(".json")],
                    what="the definitions download")[0]
    with open(path) as f:
        defs = json.load(f)
    assert {"/"} <= {v["name"] for v in defs["vhosts"]}
    assert "guest" in {u["name"] for u in defs["users"]}

    imported = tmp_path / "defs.json"
    imported.write_text(json.dumps({
        "vhosts": [{"name": IMPORTED_VHOST}],
        "permissions": [{"user": "guest", "vhost": IMPORTED_VHOST,
                         "configure": ".*", "write": ".*", "read": ".*"}],
        "queues": [{"name": "ui-imported-q", "vhost": IMPORTED_VHOST,
                    "durable": True, "auto_delete": False,
                    "arguments": {}}]}))
    css(b, "#import-form input[type=file]").send_keys(str(imported))
    css(b, "#import-form button[type=submit]").click()
    wait_flash(b, "Definitions imported.")
    assert api.get("/api/queues/%s/ui-imported-q"
                   % urllib.parse.quote(IMPORTED_VHOST, safe="")).status == 200
    # the header's vhost chooser knows the new vhost
    wait_for(b, lambda d: IMPORTED_VHOST in [
        o.get_attribute("value") for o in d.find_elements(
            By.CSS_SELECTOR, "#vhost-select option")],
        what="the imported vhost in the chooser")
    assert severe(b.logs()) == []


def test_04_create_queue(browser, base_url, api):
    b = browser
    go(b, base_url, "queues", "Queues")
    wait_list_loaded(b)
    form = css(b, "#add-queue")
    Select(form.find_element(By.NAME, "vhost")).select_by_value("/")
    fill(form, "name", QUEUE)
    fill(form, "arguments", '{"x-max-length": 100000}')
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_flash(b, "Queue declared.")
    r = api.get("/api/queues/%2F/" + urllib.parse.quote(QUEUE, safe=""))
    assert r.status == 200, r
    assert r.json["arguments"] == {"x-max-length": 100000}

    # find it through the server-side filter; the name is text, not markup
    f = css(b, ".list-controls .filter")
    f.send_keys("<i>q</i>")
    wait_for(b, lambda d: css(b, ".list-controls .count").text ==
             "1–1 of 1 queue (filtered from 2)", what="the filtered list")
    assert [a.text for a in b.d.find_elements(
        By.CSS_SELECTOR, "table.list tbody a")] == [QUEUE]
    assert b.d.find_elements(By.CSS_SELECTOR, "table.list tbody i") == []
    b.screenshot("queues")
    # the filter is remembered for the session: clear it for later pages
    f.send_keys(Keys.CONTROL, "a")
    f.send_keys(Keys.BACKSPACE)
    wait_for(b, lambda d: '"name":""' in (d.execute_script(
        "return sessionStorage.getItem('warren.list.queues')") or ""),
        what="the filter to clear")
    wait_for(b, lambda d: [a for a in d.find_elements(
        By.CSS_SELECTOR, "table.list tbody a") if a.text == QUEUE],
        what="the queue in the list")[0].click()
    wait_for(b, lambda d: css(b, "main h1").text.startswith("Queue: " + QUEUE),
             what="the queue page")
    assert severe(b.logs()) == []


def test_05_publish_and_see_the_rate(browser, base_url, broker):
    b = browser
    assert b.d.current_url.endswith("#/" + queue_hash(QUEUE))
    form = css(b, "#publish form")
    fill(form, "payload", PAYLOAD)
    fill(form, "headers", '{"from": "selenium"}')
    Select(form.find_element(By.NAME, "delivery_mode")).select_by_value("2")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_flash(b, "Message published.")
    wait_for(b, lambda d: css(b, "#q-total").text == "1",
             what="the queue to hold the message")

    pub = Publisher(broker, QUEUE)
    pub.start()
    try:
        rate = wait_for(
            b, lambda d: (lambda t: t not in ("", "0.00/s") and t)(
                css(b, "#chart-rates td[data-key=publish]").text),
            timeout=RATE_WAIT, what="the publish rate to move")
    finally:
        pub.stop.set()
        pub.join(5)
    assert pub.error is None, pub.error
    assert pub.count > 0
    assert rate.endswith("/s") and float(rate[:-2].replace(",", "")) > 0
    b.screenshot("queue-rates")
    assert severe(b.logs()) == []


def test_06_get_message(browser):
    b = browser
    form = css(b, "#get-form")
    Select(form.find_element(By.NAME, "ackmode")).select_by_value(
        "ack_requeue_true")
    fill(form, "count", "1")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    msg = wait_for(b, lambda d: css(b, "#got .message"),
                   what="the message got")
    assert css(b, "#got pre.payload").text == PAYLOAD
    assert msg.find_elements(By.TAG_NAME, "b") == []  # payload is text
    assert "selenium" in msg.text  # the header we set
    b.screenshot("queue-get")
    assert severe(b.logs()) == []


def test_06b_consumers_bindings_and_purge(browser, broker, api):
    """A pika consumer shows in the Consumers section; the Bindings form
    binds amq.direct to the queue; Purge empties it."""
    b = browser
    qpath = "/api/queues/%2F/" + urllib.parse.quote(QUEUE, safe="")
    conn = broker.pika()
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume(QUEUE, lambda *a: None, consumer_tag="ui-consumer")
        wait_for(b, lambda d: "ui-consumer" in css(b, "#consumers").text,
                 timeout=RATE_WAIT, what="the consumer listed")
        form = css(b, "form[data-form=bind]")
        fill(form, "other", "amq.direct")
        fill(form, "routing_key", "ui-key")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_flash(b, "Binding added.")
        r = api.get("/api/bindings/%2F/e/amq.direct/q/" +
                    urllib.parse.quote(QUEUE, safe=""))
        assert [x["routing_key"] for x in r.json] == ["ui-key"], r.json
        wait_for(b, lambda d: "ui-key" in css(b, "#bindings").text and
                 "amq.direct" in css(b, "#bindings").text,
                 what="the binding listed")
        b.screenshot("queue-consumers-bindings")
    finally:
        conn.close()  # its unacknowledged message goes back to the queue
    wait_for(b, lambda d: "No consumers." in css(b, "#consumers").text,
             timeout=RATE_WAIT, what="the consumer gone")
    assert api.get(qpath).json["messages"] > 0
    open_section(b, "Purge")
    css(b, "#purge").click()
    alert = wait_for(b, lambda d: d.switch_to.alert, what="the confirm")
    assert QUEUE in alert.text
    alert.accept()
    wait_flash(b, "Queue purged.")
    assert api.get(qpath).json["messages"] == 0
    wait_for(b, lambda d: css(b, "#q-total").text == "0", timeout=RATE_WAIT,
             what="the queue page to show it empty")
    assert severe(b.logs()) == []


def test_07_delete_queue(browser, api):
    b = browser
    open_section(b, "Delete")
    css(b, "#delete").click()
    alert = wait_for(b, lambda d: d.switch_to.alert, what="the confirm")
    assert QUEUE in alert.text
    alert.accept()
    wait_flash(b, "Queue deleted.")
    wait_for(b, lambda d: d.current_url.endswith("#/queues"),
             what="the queues list")
    r = api.get("/api/queues/%2F/" + urllib.parse.quote(QUEUE, safe=""))
    assert r.status == 404
    assert severe(b.logs()) == []


def test_08_paging_sorting_filtering(browser, base_url, broker):
    """25 queues, pages of 20, a regex filter and both sort orders, all
    done by the server: the table shows what the API's page holds."""
    b = browser
    names = ["ui-page-%02d" % i for i in range(25)]
    conn = broker.pika()
    ch = conn.channel()
    for n in names:
        ch.queue_declare(n)
    try:
        go(b, base_url, "queues", "Queues")
        wait_list_loaded(b)
        Select(css(b, ".list-controls .page-size")).select_by_value("20")
        css(b, ".list-controls .regex").click()
        css(b, ".list-controls .filter").send_keys("^ui-page-[0-9]+$")

        def rows():
            return [a.text for a in b.d.find_elements(
                By.CSS_SELECTOR, "table.list tbody td a")]

        def page_is(first, last, count):
            return lambda d: (css(b, ".list-controls .count").text.startswith(
                "%d–%d of 25 queues" % (first, last)) and
                len(rows()) == count and rows())

        shown = wait_for(b, page_is(1, 20, 20), what="page 1 of 2")
        assert shown == names[:20]
        assert css(b, ".page-label").text == "Page 1 of 2"
        click(b, "button[data-page=next]")
        assert wait_for(b, page_is(21, 25, 5), what="page 2") == names[20:]
        # sort by name, then reversed: the server sorts before paging
        click(b, "button[data-page=first]")
        wait_for(b, page_is(1, 20, 20), what="page 1 again")
        sort_by(b, "name", "asc")
        sort_by(b, "name", "desc")
        wait_for(b, lambda d: rows()[:1] == ["ui-page-24"],
                 what="descending order")
        b.screenshot("queues-paged")
        # back to defaults for the pages that follow
        sort_by(b, "name", "asc")
        css(b, ".list-controls .regex").click()
        f = css(b, ".list-controls .filter")
        f.send_keys(Keys.CONTROL, "a")
        f.send_keys(Keys.BACKSPACE)
        Select(css(b, ".list-controls .page-size")).select_by_value("100")
    finally:
        for n in names:
            ch.queue_delete(n)
        conn.close()
    assert severe(b.logs()) == []


BIG_VHOST = "ui-big"
BIG = 100000


def test_08b_a_hundred_thousand_queues(browser, base_url, api):
    """RabbitMQ's 100k-queue lists: 100,000 queues in one vhost (imported
    through the API), paged, filtered by regex and sorted by the server;
    the page the UI asks for comes back in well under a second."""
    b = browser
    v = BIG_VHOST
    api.ok("PUT", "/api/vhosts/" + v)
    api.ok("PUT", "/api/permissions/%s/guest" % v,
           {"configure": ".*", "write": ".*", "read": ".*"})
    r = api.post("/api/definitions", {"queues": [
        {"name": "ui-big-%06d" % i, "vhost": v, "durable": False,
         "auto_delete": False, "arguments": {}} for i in range(BIG)]})
    assert r.status in (200, 201, 204), r
    start = time.monotonic()
    page = api.ok("GET", "/api/queues/%s?page=1&page_size=100&name=&"
                  "use_regex=false&pagination=true&sort=name&"
                  "sort_reverse=true" % v)
    assert time.monotonic() - start < 1.0
    assert page["total_count"] == BIG
    assert page["items"][0]["name"] == "ui-big-099999"
    try:
        # the header's vhost chooser, as after a reload
        b.d.execute_script(
            "sessionStorage.setItem('warren.vhost', arguments[0])", v)
        go(b, base_url, "queues", "Queues")
        b.d.refresh()
        wait_for(b, lambda d: css(b, "#vhost-select").get_attribute(
            "value") == v, what="the vhost chosen")
        Select(css(b, ".list-controls .page-size")).select_by_value("100")

        def count_is(text):
            wait_for(b, lambda d: css(b, ".list-controls .count").text ==
                     text, what="the count %r" % text)

        def first_row():
            return b.d.find_elements(By.CSS_SELECTOR,
                                     "table.list tbody td a")[0].text

        count_is("1–100 of 100,000 queues")
        assert css(b, ".page-label").text == "Page 1 of 1,000"
        click(b, "button[data-page=last]")
        count_is("99,901–100,000 of 100,000 queues")
        wait_for(b, lambda d: first_row() == "ui-big-099900",
                 what="the last page's first row")
        click(b, "button[data-page=first]")
        count_is("1–100 of 100,000 queues")
        sort_to(b, "name", "desc")
        wait_for(b, lambda d: first_row() == "ui-big-099999",
                 what="descending order over all 100,000")
        css(b, ".list-controls .regex").click()
        css(b, ".list-controls .filter").send_keys("^ui-big-09999[0-9]$")
        count_is("1–10 of 10 queues (filtered from 100,000)")
        b.screenshot("queues-100k")
    finally:
        # back to the defaults the pages that follow expect
        sort_to(b, "name", "asc")
        css(b, ".list-controls .regex").click()
        f = css(b, ".list-controls .filter")
        f.send_keys(Keys.CONTROL, "a")
        f.send_keys(Keys.BACKSPACE)
        b.d.execute_script("sessionStorage.removeItem('warren.vhost')")
        api.delete("/api/vhosts/" + v)
        go(b, base_url, "queues", "Queues")
        b.d.refresh()
        wait_list_loaded(b)
    assert severe(b.logs()) == []


def test_09_every_page(browser, base_url, broker, api):
    b = browser
    api.ok("PUT", "/api/policies/%2F/ui-policy",
           {"pattern": "^ui-", "apply-to": "queues",
            "definition": {"max-length": 10}, "priority": 1})
    conn = broker.pika()  # something on the connections and channels pages
    ch = conn.channel()
    ch.confirm_delivery()
    try:
        for hash_, heading, name, ready in [
            ("connections", "Connections", "connections", ".count"),
            ("channels", "Channels", "channels", ".count"),
            ("exchanges", "Exchanges", "exchanges", ".count"),
            ("exchanges/%2F/amq.direct", "Exchange: amq.direct", "exchange",
             "#details table"),
            ("queues", "Queues", "queues-list", ".count"),
            ("users", "Admin", "users", ".count"),
            ("vhosts", "Admin", "vhosts", ".count"),
            ("permissions", "Admin", "permissions", ".count"),
            ("policies", "Admin", "policies", ".count"),
            ("nodes", "Nodes", "nodes", "details.section table"),
        ]:
            go(b, base_url, hash_, heading)
            wait_for(b, lambda d: css(b, ready).text.strip() != "",
                     what="page %s to load" % hash_)
            if ready == ".count" and hash_ in ("connections", "channels"):
                wait_for(b, lambda d: css(b, "table.list tbody tr"),
                         what="a row on %s" % hash_)
            if hash_ == "vhosts":
                delete_imported_vhost(b, api)
            if hash_ == "policies":
                wait_for(b, lambda d: "ui-policy" in css(
                    b, "table.list tbody").text, what="the policy listed")
            assert flash_text(b, "error") == "", hash_
            b.screenshot(name)
    finally:
        conn.close()
        api.delete("/api/policies/%2F/ui-policy")
    assert severe(b.logs()) == []


def submit(form):
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def row_button(b, first_cell, action):
    """Clicks the data-action button of the list row whose first cell is
    first_cell."""
    row = wait_for(b, lambda d: [tr for tr in d.find_elements(
        By.CSS_SELECTOR, "table.list tbody tr")
        if tr.find_element(By.TAG_NAME, "td").text == first_cell],
        what="the row of %s" % first_cell)[0]
    row.find_element(By.CSS_SELECTOR,
                     "button[data-action=%s]" % action).click()


def tag_list(tags):
    return tags if isinstance(tags, list) else [
        t for t in tags.split(",") if t]


def test_09b_admin_forms(browser, base_url, api):
    """Users, vhosts, permissions and policies edited through the Admin
    forms; each change checked through the API."""
    b = browser
    user, vhost, policy = "ui-form-user", "ui-form-vh", "ui-form-pol"
    venc = urllib.parse.quote(vhost, safe="")
    try:
        go(b, base_url, "users", "Admin")
        wait_list_loaded(b)
        form = css(b, "#user-form")
        fill(form, "name", user)
        fill(form, "password", "pw1")
        fill(form, "tags", "monitoring")
        submit(form)
        wait_flash(b, "User saved.")
        assert tag_list(api.get("/api/users/" + user).json["tags"]) == [
            "monitoring"]
        # Edit: the row's tags into the form, changed, saved again
        row_button(b, user, "edit")
        form = css(b, "#user-form")
        assert form.find_element(By.NAME, "name").get_attribute(
            "value") == user
        fill(form, "tags", "policymaker, monitoring")
        submit(form)
        wait_flash(b, "User saved.")
        assert sorted(tag_list(api.get("/api/users/" + user).json[
            "tags"])) == ["monitoring", "policymaker"]
        b.screenshot("user-edited")

        go(b, base_url, "vhosts", "Admin")
        wait_list_loaded(b)
        form = css(b, "#vhost-form")
        fill(form, "name", vhost)
        fill(form, "description", "made by the UI test")
        submit(form)
        wait_flash(b, "Virtual host added.")
        assert api.get("/api/vhosts/" + venc).json["description"] == \
            "made by the UI test"

        go(b, base_url, "permissions", "Admin")
        wait_list_loaded(b)
        form = css(b, "#perm-form")
        fill(form, "user", user)
        Select(form.find_element(By.NAME, "vhost")).select_by_value(vhost)
        fill(form, "configure", "^ui-")
        submit(form)
        wait_flash(b, "Permission set.")
        p = api.get("/api/permissions/%s/%s" % (venc, user)).json
        assert (p["configure"], p["write"], p["read"]) == ("^ui-", ".*",
                                                            ".*")
        wait_for(b, lambda d: user in css(b, "table.list tbody").text,
                 what="the permission listed")
        b.screenshot("permission-set")

        go(b, base_url, "policies", "Admin")
        wait_list_loaded(b)
        form = css(b, "#policy-form")
        Select(form.find_element(By.NAME, "vhost")).select_by_value(vhost)
        fill(form, "name", policy)
        fill(form, "pattern", "^ui-")
        Select(form.find_element(By.NAME, "apply-to")).select_by_value(
            "queues")
        fill(form, "priority", "2")
        fill(form, "definition", '{"max-length": 5}')
        submit(form)
        wait_flash(b, "Policy saved.")
        ppath = "/api/policies/%s/%s" % (venc, policy)
        got = api.get(ppath).json
        assert (got["pattern"], got["apply-to"], got["priority"],
                got["definition"]) == ("^ui-", "queues", 2,
                                       {"max-length": 5}), got
        row_button(b, vhost, "edit")
        form = css(b, "#policy-form")
        assert form.find_element(By.NAME, "name").get_attribute(
            "value") == policy
        fill(form, "definition", '{"max-length": 7}')
        submit(form)
        wait_flash(b, "Policy saved.")
        assert api.get(ppath).json["definition"] == {"max-length": 7}
        b.screenshot("policy-edited")
        row_button(b, vhost, "delete")
        wait_for(b, lambda d: d.switch_to.alert, what="the confirm").accept()
        wait_flash(b, "Policy deleted.")
        assert api.get(ppath).status == 404

        go(b, base_url, "permissions", "Admin")
        wait_list_loaded(b)
        row_button(b, user, "delete")
        wait_for(b, lambda d: d.switch_to.alert, what="the confirm").accept()
        wait_flash(b, "Permission cleared.")
        assert api.get("/api/permissions/%s/%s" % (venc, user)).status \
            == 404

        go(b, base_url, "users", "Admin")
        wait_list_loaded(b)
        row_button(b, user, "delete")
        wait_for(b, lambda d: d.switch_to.alert, what="the confirm").accept()
        wait_flash(b, "User deleted.")
        assert api.get("/api/users/" + user).status == 404
    finally:
        api.delete("/api/policies/%s/%s" % (venc, policy))
        api.delete("/api/users/" + user)
        api.delete("/api/vhosts/" + venc)
    assert severe(b.logs()) == []


def delete_imported_vhost(b, api):
    """Deletes the vhost test_03 imported with its row's Delete button."""
    row = wait_for(b, lambda d: [tr for tr in d.find_elements(
        By.CSS_SELECTOR, "table.list tbody tr")
        if tr.find_element(By.TAG_NAME, "td").text == IMPORTED_VHOST],
        what="the imported vhost's row")[0]
    row.find_element(By.CSS_SELECTOR, "button[data-action=delete]").click()
    wait_for(b, lambda d: d.switch_to.alert, what="the confirm").accept()
    wait_flash(b, "Virtual host deleted.")
    assert api.get("/api/vhosts/" + IMPORTED_VHOST).status == 404
    wait_for(b, lambda d: IMPORTED_VHOST not in css(b, "table.list").text,
             what="the vhost gone from the list")


def login(b, user, password):
    css(b, "#login-username").clear()
    css(b, "#login-username").send_keys(user)
    css(b, "#login-password").clear()
    css(b, "#login-password").send_keys(password)
    css(b, "#login-form button[type=submit]").click()


def test_10_tags_decide(browser, base_url, api):
    """Logout; a user without a management tag is refused with the API's
    reason; a management user gets in without the Admin and Nodes tabs."""
    b = browser
    css(b, "#logout").click()
    wait_for(b, lambda d: css(b, "#login").is_displayed(),
             what="the login form after logout")
    api.ok("PUT", "/api/users/ui-notag", {"password": "pw", "tags": ""})
    api.ok("PUT", "/api/users/ui-mgmt", {"password": "pw",
                                         "tags": "management"})
    api.ok("PUT", "/api/permissions/%2F/ui-mgmt",
           {"configure": ".*", "write": ".*", "read": ".*"})
    try:
        login(b, "ui-notag", "pw")
        wait_for(b, lambda d: css(b, "#login-error").text ==
                 "Not management user", what="the refusal's reason")
        expected = severe(b.d.get_log("browser"))  # the 401s of the refusal
        assert expected and all("401" in e["message"] for e in expected)

        login(b, "ui-mgmt", "pw")
        wait_for(b, lambda d: css(b, "#whoami").text == "ui-mgmt",
                 what="the management user logged in")
        assert not css(b, "#tab-admin").is_displayed()
        assert not css(b, "#tab-nodes").is_displayed()
        go(b, base_url, "nodes", "Not allowed")  # no API call tried
        go(b, base_url, "queues", "Queues")
        wait_list_loaded(b)
        b.screenshot("management-user")
        css(b, "#logout").click()
        wait_for(b, lambda d: css(b, "#login").is_displayed(),
                 what="the login form after logout")
    finally:
        api.delete("/api/users/ui-notag")
        api.delete("/api/users/ui-mgmt")
    assert severe(b.logs()) == []


def test_11_console_clean(browser):
    errors = severe(browser.logs()) + severe(browser.console)
    assert errors == [], errors
