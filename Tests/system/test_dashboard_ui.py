"""The dashboard's web UI (issue 13 item 4) driven in headless Chromium, as a new user would:
log in with admin/public, change the password when forced to, find a connected paho client
and kick it, unload and load a plugin (the template sidecar), watch the message-rate chart
move while a publisher runs, and use every other page, at 1280x800 and at phone width.

The tests of this module run in order against one broker and one browser (the password
changed by the first is the one the others log in with). The run saves screenshots to
docs/images/dashboard-*.png (SWIFTLET_SCREENSHOT_DIR elsewhere), which docs/dashboard.md shows.
Every wait is bounded polling on something the page shows; nothing asserts a duration.

Needs Debian's chromium and chromium-driver and selenium from PyPI (scripts/test installs
them); CHROMIUM_BIN / CHROMEDRIVER_BIN override where they are.
"""

import json
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from brokers import REPO, free_port, swiftlet_path
from clients import Client
from sidecars import registrations, short_dir, sidecar_config, wait_registered

try:
    from selenium import webdriver
    from selenium.common.exceptions import (ElementClickInterceptedException, NoSuchElementException,
                                            StaleElementReferenceException)
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
except ImportError:  # pragma: no cover - reported by the fixture
    webdriver = None

WWW = REPO / "Sources" / "SwiftletDashboard" / "www"
SHOTS = Path(os.environ.get("SWIFTLET_SCREENSHOT_DIR", REPO / "docs" / "images"))
NEW_PASSWORD = "Swiftlet-ui-2024"
WAIT = 30.0  # upper bound of every wait: generous for a loaded CI machine, never a measurement
DESKTOP = {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}


# -- static checks: what the Content-Security-Policy forbids is not in the files ---------------

def test_static_files_obey_the_content_security_policy():
    html = (WWW / "index.html").read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, f"inline script in index.html: {tag}"
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), "inline script body in index.html"
    assert not re.search(r"\sstyle\s*=", html), "style attribute in index.html"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler in index.html"
    assert "<style" not in html
    # Every file the page loads is one of ours, under /static/.
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert ref.startswith("/static/"), f"index.html loads {ref} from elsewhere"
        assert (WWW / ref[len("/static/"):]).is_file(), f"{ref} is not in {WWW}"
    js = (WWW / "app.js").read_text()
    for bad in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                "setAttribute('style'", 'setAttribute("style"', "http://", "https://"):
        assert bad not in js, f"app.js uses {bad}"
    css = (WWW / "app.css").read_text()
    assert "@import" not in css and "url(http" not in css


# -- the broker, the browser and helpers ---------------------------------------------------------

class Dashboard:
    def __init__(self, broker, port, plugins):
        self.broker = broker
        self.url = f"http://127.0.0.1:{port}"
        self.plugins = plugins

    def http(self, method, path, body=None, token=None):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, _body(r.read()), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, _body(e.read()), dict(e.headers)


def _body(raw):
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")


@pytest.fixture(scope="module")
def dash(module_broker_factory):
    template = swiftlet_path().parent / "swiftlet-sidecar-template"
    if not template.exists():
        pytest.fail(f"template binary not found at {template}")
    d = short_dir()
    plugins = d / "plugins"
    plugins.mkdir()
    text = (REPO / "etc" / "plugins" / "template.toml").read_text()
    text = text.replace('command = ".build/release/swiftlet-sidecar-template"', f'command = "{template}"')
    text = text.replace("enabled = false", "enabled = true")
    (plugins / "template.toml").write_text(text)
    port = free_port()
    shutil.copy(REPO / "etc" / "acl.toml", d / "acl.toml")  # emqttd's defaults, editable on the ACL page
    extra = (sidecar_config(d / "sc.sock") + f'plugins_dir = "{plugins}"\n'
             + f'\n[auth]\nusers_file = "{d}/users.toml"\n'  # the built-in users the Users page manages
             + f'acl_file = "{d}/acl.toml"\n'
             + f'\n[dashboard]\nenabled = true\nlistener = "127.0.0.1:{port}"\n')
    b = module_broker_factory(extra=extra)
    dsh = Dashboard(b, port, plugins)
    wait_until(lambda: _status_ok(dsh), "the dashboard answers GET /status")
    wait_registered(b, "template")
    yield dsh
    shutil.rmtree(d, ignore_errors=True)


def _status_ok(dsh):
    try:
        return dsh.http("GET", "/status")[0] == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def browser(dash):
    if webdriver is None:
        pytest.fail("selenium is not installed (pip install -r Tests/system/requirements.txt)")
    chromium = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = os.environ.get("CHROMEDRIVER_BIN") or shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
    if not chromium or not Path(driver_bin).exists():
        pytest.fail("chromium and chromium-driver are needed (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--lang=en-US",
              "--window-size=1280,800", "--force-device-scale-factor=1", "--hide-scrollbars",
              "--disable-extensions", "--no-first-run", "--password-store=basic"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(driver_bin), options=opts)
    drv.set_page_load_timeout(WAIT)
    viewport(drv, DESKTOP)
    yield drv
    drv.quit()


def viewport(drv, metrics):
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def wait_until(fn, what, timeout=WAIT):
    """Polls fn until it returns something true; elements replaced meanwhile are looked up again."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except (NoSuchElementException, StaleElementReferenceException) as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last: {last.__class__.__name__})" if last else ""))


def css(drv, sel):
    return drv.find_element(By.CSS_SELECTOR, sel)


def present(drv, sel):
    return len(drv.find_elements(By.CSS_SELECTOR, sel)) > 0


def click(drv, sel, what=None):
    """Clicks sel once it is there and clickable (rows are redrawn by the live refresh)."""
    def attempt():
        try:
            el = css(drv, sel)
            if not el.is_displayed() or not el.is_enabled():
                return False
            el.click()
            return True
        except ElementClickInterceptedException:
            return False
    wait_until(attempt, what or f"clickable {sel}")


def fill(form, name, value):
    el = form.find_element(By.NAME, name)
    el.clear()
    el.send_keys(value)


def phone_layout(drv):
    return css(drv, "#nav-toggle").is_displayed()


def open_menu(drv):
    click(drv, "#nav-toggle")
    wait_until(lambda: present(drv, "body.nav-open") and css(drv, "#nav").rect["x"] >= 0, "the menu slid in")


def open_page(drv, name):
    """Through the menu, as a user would (opening it first at phone width)."""
    phone = phone_layout(drv)
    if phone:
        open_menu(drv)
    click(drv, f"#nav a[data-page={name}]")
    if phone:
        wait_until(lambda: not css(drv, "#nav").is_displayed(), "the menu folded away")
    wait_until(lambda: present(drv, f"body[data-page={name}] section[data-page={name}]"), f"page {name}")
    wait_until(lambda: present(drv, f"section[data-page={name}] [data-loaded]"), f"page {name} loaded its data")


def confirm(drv):
    click(drv, "dialog[open] button[data-action=confirm]", "the confirmation dialog")
    wait_until(lambda: not present(drv, "dialog[open]"), "the dialog closes")


def shot(drv, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(SHOTS / f"dashboard-{name}.png"))


def no_error_banner(drv):
    return not [e.text for e in drv.find_elements(By.CSS_SELECTOR, "#view .error") if e.is_displayed()]


def no_horizontal_scroll(drv):
    return drv.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")


def chart(drv, sel, attr):
    v = css(drv, sel).get_attribute(f"data-{attr}")
    return float(v) if v not in (None, "") else 0.0


class Publisher:
    """Publishes QoS 0 to sensors/ui/<n> about 50 times a second until stop()."""

    def __init__(self, broker):
        self.c = Client(broker, client_id=f"ui-pub-{uuid.uuid4().hex[:6]}", username="alice", password="secret")
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        n = 0
        while not self.stop_ev.is_set():
            self.c.publish(f"sensors/ui/{n % 5}", b"%d" % n, qos=0, wait=False)
            n += 1
            time.sleep(0.02)

    def stop(self):
        self.stop_ev.set()
        self.t.join(10)
        self.c.disconnect()


@pytest.fixture(scope="module")
def subscriber(dash):
    """A client with a subscription, kept connected so that sessions, subscriptions and topics
    have a row to show and the publisher's messages go out again (sent rate)."""
    c = Client(dash.broker, client_id="ui-sensor-dashboard", username="alice", password="secret")
    c.subscribe("sensors/#", qos=1)
    yield c
    c.disconnect()


# -- the walk through ---------------------------------------------------------------------------

def test_login_and_forced_password_change(dash, browser):
    d = browser
    d.get(dash.url + "/")
    wait_until(lambda: css(d, "#login-form").is_displayed(), "the login form")
    assert "Swiftlet" in d.title
    shot(d, "login")
    form = css(d, "#login-form")
    fill(form, "username", "admin")
    fill(form, "password", "not-the-password")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: "Wrong username or password" in css(d, "#login-form .form-error").text, "the login error")

    form = css(d, "#login-form")
    fill(form, "password", "public")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: present(d, "#change-password-form"), "the forced password change")
    assert "#/change-password" in d.current_url
    # Until the change, the menu is not there and other pages lead back here.
    assert not css(d, "#nav").is_displayed()
    d.execute_script("location.hash = '#/clients'")
    wait_until(lambda: "#/change-password" in d.current_url and present(d, "#change-password-form"),
               "other pages lead back to the password change")
    shot(d, "change-password")
    form = css(d, "#change-password-form")
    fill(form, "new1", NEW_PASSWORD)
    fill(form, "new2", NEW_PASSWORD + "x")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: "differ" in css(d, "#change-password-form .form-error").text, "the mismatch is caught")
    fill(form, "new2", NEW_PASSWORD)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: present(d, "body[data-page=overview]"), "the overview after the change")
    assert css(d, "#whoami").text == "admin"
    # The new password is the one that works now.
    status, body, _ = dash.http("POST", "/api/v5/login", {"username": "admin", "password": NEW_PASSWORD})
    assert status == 200 and not body.get("password_change_required"), body
    status, _, _ = dash.http("POST", "/api/v5/login", {"username": "admin", "password": "public"})
    assert status == 401


def test_overview_chart_moves_while_a_publisher_runs(dash, browser, subscriber):
    d = browser
    open_page(d, "overview")
    msg = "#chart-messages"
    wait_until(lambda: chart(d, msg, "updates") >= 2, "monitor samples in the chart")
    # The monitor stream (server-sent events) is what feeds it, not the polling fallback.
    wait_until(lambda: css(d, "#live").get_attribute("data-state") == "live", "the live indicator on the stream")
    wait_until(lambda: chart(d, "#chart-connections", "last-connections") >= 1, "the subscriber counted")
    # The last minute only: the curve fills the picture.
    click(d, "button[data-window='60']")
    wait_until(lambda: css(d, "button[data-window='60']").get_attribute("aria-pressed") == "true", "the 1 min window")
    pub = Publisher(dash.broker)
    try:
        start = chart(d, msg, "updates")
        wait_until(lambda: chart(d, msg, "last-received") > 0, "the received rate to rise")
        wait_until(lambda: chart(d, msg, "last-sent") > 0, "the sent rate to rise")
        # A few seconds of the curve for the picture.
        wait_until(lambda: chart(d, msg, "updates") >= start + 8, "eight more samples")
        assert chart(d, msg, "max-received") > 0
        wait_until(lambda: css(d, "[data-stat='messages.received'] .stat-value").text not in ("0", "–"),
                   "the message counter")
        assert no_horizontal_scroll(d)
        shot(d, "overview")
    finally:
        pub.stop()
    wait_until(lambda: chart(d, msg, "last-received") == 0, "the received rate back at zero after the publisher")


def test_find_a_client_and_kick_it(dash, browser):
    d = browser
    cid = f"ui-kick-{uuid.uuid4().hex[:6]}"
    c = Client(dash.broker, client_id=cid, username="alice", password="secret")
    try:
        open_page(d, "clients")
        row = f"tr[data-key='{cid}']"
        wait_until(lambda: present(d, row), "the client in the list")
        # Search by client id, by username and by IP address.
        form = css(d, "form[data-filters=clients]")
        fill(form, "q", cid[:10])
        wait_until(lambda: present(d, row) and len(d.find_elements(By.CSS_SELECTOR, "table[data-table=clients] tbody tr")) >= 1
                   and all(cid[:10] in r.get_attribute("data-key")
                           for r in d.find_elements(By.CSS_SELECTOR, "table[data-table=clients] tbody tr")),
                   "the list filtered by client id")
        assert css(d, row).get_attribute("data-connected") == "true"
        assert "alice" in css(d, row).text
        Select(form.find_element(By.NAME, "by")).select_by_value("username")
        fill(form, "q", "alic")
        wait_until(lambda: present(d, row) and present(d, "tr[data-key='ui-sensor-dashboard']"), "search by username")
        assert all("alice" in r.text for r in d.find_elements(By.CSS_SELECTOR, "table[data-table=clients] td[data-label=Username]"))
        Select(form.find_element(By.NAME, "by")).select_by_value("ip")
        fill(form, "q", "127.0.0.1")
        wait_until(lambda: present(d, row), "search by IP address")
        fill(form, "q", "192.0.2.77")
        wait_until(lambda: not present(d, row), "an IP with no client")
        fill(form, "q", "127.0.0.1")
        wait_until(lambda: present(d, row), "search by IP address again")
        shot(d, "clients")

        click(d, f"{row} button[data-action=kick]")
        wait_until(lambda: cid in css(d, "dialog[open]").text, "the kick confirmation")
        confirm(d)
        assert c.disconnected.wait(WAIT), "the paho client was not disconnected"
        wait_until(lambda: not present(d, row), "the kicked client gone from the list")
    finally:
        c.c.loop_stop()


def test_unload_and_load_a_plugin(dash, browser):
    d = browser
    open_page(d, "plugins")
    row = "tr[data-key=template]"
    wait_until(lambda: present(d, f"{row}[data-state=running]"), "the template plugin running")
    wait_until(lambda: present(d, f"{row} td[data-label=Health] .badge.ok"), "its health")
    restarts = css(d, f"{row} td[data-label=Restarts]").text
    assert re.fullmatch(r"\d+", restarts), restarts
    shot(d, "plugins")
    before = registrations(dash.broker, "template")

    click(d, f"{row} button[data-action=unload]")
    confirm(d)
    wait_until(lambda: present(d, f"{row}[data-state=stopped]"), "the plugin stopped")
    wait_until(lambda: css(d, f"{row} button[data-action=load]").is_enabled(), "Load enabled")
    assert not css(d, f"{row} button[data-action=unload]").is_enabled()
    # Out of the auth chain: alice (known only to the template) is refused now.
    Client(dash.broker, username="alice", password="secret", expect_rc=0x86)
    shot(d, "plugins-stopped")

    click(d, f"{row} button[data-action=load]")
    wait_until(lambda: present(d, f"{row}[data-state=running]"), "the plugin running again")
    wait_registered(dash.broker, "template", count=before + 1)
    wait_until(lambda: present(d, f"{row} td[data-label=Health] .badge.ok"), "healthy again")
    Client(dash.broker, username="alice", password="secret").disconnect()


def test_every_page_shows_live_data(dash, browser, subscriber):
    d = browser
    # Something to list on the retained page.
    subscriber.publish("sensors/ui/retained", b"21.5", qos=1, retain=True)

    for name in ("sessions", "subscriptions", "topics"):
        open_page(d, name)
        wait_until(lambda: present(d, "tr[data-key^='ui-sensor-dashboard']") or present(d, "tr[data-key='sensors/#']"),
                   f"the subscriber on {name}")
        assert no_error_banner(d) and no_horizontal_scroll(d)
        shot(d, name)

    open_page(d, "retained")
    wait_until(lambda: present(d, "tr[data-key='sensors/ui/retained']"), "the retained message")
    shot(d, "retained")
    # Published while the page is open: it shows up without a reload.
    subscriber.publish("sensors/ui/retained2", b"on", qos=1, retain=True)
    wait_until(lambda: present(d, "tr[data-key='sensors/ui/retained2']"), "a new retained message, live")
    click(d, "tr[data-key='sensors/ui/retained2'] button[data-action=delete]")
    confirm(d)
    wait_until(lambda: not present(d, "tr[data-key='sensors/ui/retained2']"), "the retained message deleted")

    open_page(d, "listeners")
    wait_until(lambda: present(d, "table[data-table=listeners] tbody tr"), "the listeners")
    assert f":{dash.broker.port}" in css(d, "table[data-table=listeners]").text
    shot(d, "listeners")

    open_page(d, "users")
    click(d, "button[data-action=add-user]")
    form = css(d, "dialog[open] form")
    fill(form, "user_id", "ui-user")
    fill(form, "password", "ui-secret-1")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: present(d, "tr[data-key='ui-user']"), "the new built-in user")
    # The new user can connect with that password.
    Client(dash.broker, username="ui-user", password="ui-secret-1").disconnect()
    click(d, "tr[data-key='ui-user'] button[data-action=passwd]")
    form = css(d, "dialog[open] form")
    fill(form, "password", "ui-secret-2")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: not present(d, "dialog[open]"), "the password dialog closes")
    Client(dash.broker, username="ui-user", password="ui-secret-2").disconnect()
    Client(dash.broker, username="ui-user", password="ui-secret-1", expect_rc=0x86)
    shot(d, "users")

    open_page(d, "acl")
    wait_until(lambda: present(d, "table[data-table=acl] tbody tr"), "the ACL rules")
    rules = len(d.find_elements(By.CSS_SELECTOR, "table[data-table=acl] tbody tr"))
    # A rule added in front denies ui-user's subscription at once; deleting it lifts the denial.
    click(d, "button[data-action=add-rule]")
    form = css(d, "dialog[open] form")
    Select(form.find_element(By.NAME, "permission")).select_by_value("deny")
    Select(form.find_element(By.NAME, "kind")).select_by_value("username")
    fill(form, "who", "ui-user")
    Select(form.find_element(By.NAME, "action")).select_by_value("subscribe")
    fill(form, "topics", "ui/secret/#")
    fill(form, "position", "1")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: "ui/secret/#" in css(d, "tr[data-key='1']").text, "the new rule first")
    assert len(d.find_elements(By.CSS_SELECTOR, "table[data-table=acl] tbody tr")) == rules + 1
    c = Client(dash.broker, username="ui-user", password="ui-secret-2")
    assert c.subscribe("ui/secret/a") == [0x87]
    shot(d, "acl")
    click(d, "tr[data-key='1'] button[data-action=delete]")
    confirm(d)
    wait_until(lambda: len(d.find_elements(By.CSS_SELECTOR, "table[data-table=acl] tbody tr")) == rules, "the rule gone")
    assert c.subscribe("ui/secret/a") == [0]
    c.disconnect()

    open_page(d, "cache")
    wait_until(lambda: present(d, "[data-cache]") or present(d, ".cache-body table"), "the cache statistics")
    shot(d, "cache")
    click(d, "button[data-action=clear-cache]")
    confirm(d)
    wait_until(lambda: "Cache cleared" in css(d, "#toast").text, "the cache cleared")

    open_page(d, "settings")
    click(d, "button[data-action=create-key]")
    form = css(d, "dialog[open] form")
    fill(form, "name", "ui-script")
    fill(form, "desc", "made by the UI test")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: present(d, "dialog[open]") and "api_secret" in css(d, "dialog[open]").text, "the new key's secret")
    click(d, "dialog[open] .actions button.primary")
    wait_until(lambda: present(d, "tr[data-key='ui-script']"), "the API key listed")
    shot(d, "settings")

    for name in ("overview", "clients", "plugins"):
        open_page(d, name)
        assert no_error_banner(d) and no_horizontal_scroll(d), name


def test_phone_width(dash, browser, subscriber):
    d = browser
    viewport(d, PHONE)
    try:
        d.execute_script("window.scrollTo(0, 0)")
        open_page(d, "overview")
        # The menu is folded away; the charts are still fed.
        wait_until(lambda: not css(d, "#nav a[data-page=clients]").is_displayed(), "the menu folded away")
        wait_until(lambda: css(d, "#chart-messages").size["width"] <= PHONE["width"], "the chart fits")
        n = chart(d, "#chart-messages", "updates")
        wait_until(lambda: chart(d, "#chart-messages", "updates") > n, "the chart still updating")
        assert no_horizontal_scroll(d)
        shot(d, "phone-overview")
        open_menu(d)
        shot(d, "phone-menu")
        click(d, "#nav a[data-page=clients]")
        wait_until(lambda: present(d, "section[data-page=clients] [data-loaded]"), "the clients page")
        wait_until(lambda: not css(d, "#nav a[data-page=clients]").is_displayed(), "the menu closes")
        wait_until(lambda: present(d, "tr[data-key='ui-sensor-dashboard']"), "the subscriber in the client list")
        # Rows are cards: the header row is hidden, each cell is labelled.
        assert not css(d, "table[data-table=clients] thead").is_displayed()
        assert no_horizontal_scroll(d)
        shot(d, "phone-clients")
        for name in ("plugins", "settings"):
            open_page(d, name)
            assert no_horizontal_scroll(d), name
    finally:
        viewport(d, DESKTOP)


def test_no_policy_violations_or_script_errors(dash, browser):
    d = browser
    _, _, headers = dash.http("GET", "/")
    csp = {k.lower(): v for k, v in headers.items()}.get("content-security-policy", "")
    assert "default-src" in csp, f"no Content-Security-Policy on /: {headers}"
    assert d.execute_script("return document.body.dataset.cspViolation || null") is None
    problems = [e["message"] for e in d.get_log("browser")
                if e["level"] == "SEVERE" and ("Content Security Policy" in e["message"] or "Refused to" in e["message"]
                                               or "Uncaught" in e["message"])]
    assert not problems, problems
    # Logging out ends the session: the token is gone and the login form is back.
    open_page(d, "settings")
    click(d, "#logout-button")
    wait_until(lambda: present(d, "#login-form"), "the login form after logging out")
    assert d.execute_script("return sessionStorage.getItem('swiftlet.token')") is None
