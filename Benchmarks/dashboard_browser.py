#!/usr/bin/env python3
"""The dashboard open in headless Chromium for scripts/bench (issue 13): logs in (changing the
default password through the API first when it is still required), opens the overview, whose
charts follow the live event stream and whose counters poll the API, and stays until SIGTERM.
Writes READY_FILE once the overview shows live data.

    dashboard_browser.py PORT READY_FILE
"""
import json
import shutil
import signal
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

PASSWORD = "bench-dashboard-pw"


def api(port, path, body, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read()
        return json.loads(text) if text else {}


def main(port, ready_file):
    try:
        api(port, "/api/v5/login", {"username": "admin", "password": PASSWORD})
    except urllib.error.HTTPError:
        tok = api(port, "/api/v5/login", {"username": "admin", "password": "public"})["token"]
        api(port, "/api/v5/users/admin/change_pwd", {"old_pwd": "public", "new_pwd": PASSWORD}, tok)
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,800"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"), options=opts)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        drv.get(f"http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 30
        while not drv.find_elements(By.CSS_SELECTOR, "#login-form") and time.monotonic() < deadline:
            time.sleep(0.1)
        form = drv.find_element(By.CSS_SELECTOR, "#login-form")
        form.find_element(By.NAME, "username").send_keys("admin")
        form.find_element(By.NAME, "password").send_keys(PASSWORD)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        while not drv.find_elements(By.CSS_SELECTOR, "body[data-page=overview]") and time.monotonic() < deadline:
            time.sleep(0.1)
        if not drv.find_elements(By.CSS_SELECTOR, "body[data-page=overview]"):
            print("dashboard_browser: the overview did not open", file=sys.stderr)
            return 1
        open(ready_file, "w").write("ready\n")
        while not stop:
            time.sleep(0.2)
    finally:
        drv.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), sys.argv[2]))
