"""The playground in a real browser with no network: Debian's headless Chromium, driven by Selenium through
/usr/bin/chromedriver, loads /graphql from a real `kobo serve` and runs the first quickstart tab with a key.

Every host but 127.0.0.1 goes to a proxy that does not exist (port 9, discard), so a file fetched from a CDN would
fail and the page would stay on "Loading…". Chromium is installed with apt-get when it is missing (root and apt are
needed; otherwise the test is skipped and says why), and no Chromium process outlives the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OFFLINE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1",
    "--window-size=1400,1000",
]
WAIT_SECONDS = 60


def _install_chromium() -> str | None:
    """None once Chromium and its driver are there; otherwise why they cannot be (the skip reason)."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return None
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "Chromium is not installed and cannot be: `apt-get install chromium chromium-driver` needs apt and root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait_for_lock = ["-o", "DPkg::Lock::Timeout=600"]  # another apt run on the machine holds the lock for a while
    for command in (
        ["apt-get", *wait_for_lock, "update"],
        ["apt-get", *wait_for_lock, "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return None if CHROMIUM.exists() and CHROMEDRIVER.exists() else "apt-get installed no /usr/bin/chromium"


@pytest.fixture(scope="module")
def chromium() -> None:
    reason = _install_chromium()
    if reason is not None:
        pytest.skip(reason)


def _processes_using(profile: Path) -> list[int]:
    """Pids of the Chromium processes started with this test's own profile directory (none of anyone else's)."""
    marker = f"--user-data-dir={profile}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
    return pids


@pytest.fixture
def browser(chromium: None) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="kobo-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*OFFLINE_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        for pid in _processes_using(profile):  # quit() normally ends them all; a hung renderer must not stay
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(profile, ignore_errors=True)


def _create_key(env: dict[str, str]) -> str:
    command = [sys.executable, "-m", "app.cli", "keys", "create", "--org", f"play-{uuid.uuid4().hex[:8]}"]
    done = subprocess.run([*command, "--mode", "test"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_the_playground_runs_the_first_quickstart_step_offline(
    browser: object, served: tuple[str, dict[str, str]]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser  # selenium's WebDriver, typed loosely so that collecting this module needs no selenium
    base, env = served
    key = _create_key(env)
    wait = WebDriverWait(driver, WAIT_SECONDS)  # type: ignore[arg-type]
    response = "return document.querySelector('.result-window .CodeMirror').CodeMirror.getValue()"
    storage = "return [Object.keys(localStorage), Object.keys(sessionStorage)]"

    # given the page, loaded with every other host unreachable
    driver.get(f"{base}/graphql")  # type: ignore[attr-defined]
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".graphiql-execute-button"))
    tabs = [tab.text for tab in driver.find_elements(By.CSS_SELECTOR, ".graphiql-tab")]  # type: ignore[attr-defined]
    assert tabs[:3] == ["CreateCustomer", "CreateMetric", "CreatePlan"] and len(tabs) == 9
    hint = driver.find_element(By.CSS_SELECTOR, ".kobo-hint").text  # type: ignore[attr-defined]
    assert "Authorization: Bearer" in hint and "keys create" in hint

    # when the key goes in the field and the first tab runs
    field = driver.find_element(By.ID, "kobo-api-key")  # type: ignore[attr-defined]
    field.send_keys(key, Keys.ENTER)
    driver.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()  # type: ignore[attr-defined]

    # then the page shows the customer Kobo made
    wait.until(lambda d: "createCustomer" in d.execute_script(response))
    answer = json.loads(driver.execute_script(response))  # type: ignore[attr-defined]
    assert answer["data"]["createCustomer"]["externalId"] == "cus_42", answer
    # and everything it loaded came from Kobo (the schema too, fetched once the key was in), nothing failing
    resources = "return performance.getEntriesByType('resource').map(e => e.name)"
    wait.until(lambda d: d.execute_script(resources).count(f"{base}/graphql") >= 2)
    loaded = driver.execute_script(resources)  # type: ignore[attr-defined]
    assert all(name.startswith(f"{base}/") for name in loaded), loaded
    assert any(name.endswith("graphiql.min.js") for name in loaded)
    problems = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]  # type: ignore[attr-defined]
    assert problems == []
    # and the browser keeps nothing: no key, no tabs
    assert driver.execute_script(storage) == [[], []]  # type: ignore[attr-defined]

    # when "Remember" is ticked, the tabs and the key are kept; untick it and they are gone again
    driver.find_element(By.ID, "kobo-remember").click()  # type: ignore[attr-defined]
    kept = driver.execute_script("return Object.fromEntries(Object.entries(localStorage))")  # type: ignore[attr-defined]
    assert kept["kobo-playground:apiKey"] == key and "CreateCustomer" in kept["kobo-playground:graphiql:tabState"]
    driver.find_element(By.ID, "kobo-remember").click()  # type: ignore[attr-defined]
    assert driver.execute_script(storage) == [[], []]  # type: ignore[attr-defined]
    assert len(driver.find_elements(By.CSS_SELECTOR, ".graphiql-tab")) == 9  # type: ignore[attr-defined]
