"""A real headless Chromium (Debian's) driven by Playwright, as a person uses Open WebUI."""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from typing import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
# Offline machine: no background calls home, no updates, no QUIC (see the env notes).
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def page(tmp_path) -> Iterator:
    """A fresh browser page (its own profile); fails, never skips, without Chromium."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `bash .ci/setup` as root", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            yield context.new_page()
        finally:
            browser.close()


def sign_up_first_admin(pg, url: str, name: str, email: str, password: str) -> None:
    """What the first visitor of a fresh Open WebUI does: Get started, create the admin account."""
    pg.goto(url, wait_until="networkidle", timeout=120_000)
    pg.get_by_role("button", name="Get started").click()
    pg.fill("#name", name)
    pg.fill("#email", email)
    pg.fill("#password", password)
    pg.get_by_role("button", name="Create Admin Account").click()
    pg.wait_for_selector("#chat-input", timeout=60_000)


def sign_in(pg, url: str, email: str, password: str) -> None:
    """Sign in on the login page."""
    pg.goto(url, wait_until="networkidle", timeout=120_000)
    pg.fill("#email", email)
    pg.fill("#password", password)
    pg.get_by_role("button", name="Sign in").click()
    pg.wait_for_selector("#chat-input", timeout=60_000)


def dismiss_release_notes(pg) -> None:
    """Close the "What's New" dialog a new account sees."""
    ok = pg.get_by_role("button", name="Okay, Let's Go!")
    try:
        ok.click(timeout=5_000)
    except Exception:  # not shown: nothing to close
        pass


def ask(pg, text: str, timeout: float = 180) -> str:
    """Send TEXT in the chat box and return the assistant's answer once it stops growing."""
    pg.click("#chat-input")
    pg.keyboard.type(text)
    pg.keyboard.press("Enter")
    answer = pg.locator("#response-content-container").last
    answer.wait_for(timeout=timeout * 1000)
    last, stable_since, deadline = None, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = answer.inner_text().strip()
        if now != last:
            last, stable_since = now, time.monotonic()
        elif now and time.monotonic() - stable_since > 5:
            return now
        time.sleep(0.5)
    return last or ""
