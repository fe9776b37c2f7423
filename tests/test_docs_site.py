"""The built site in a real browser: headless Chromium renders the front page and a tutorial,
so a page that builds but renders empty (a macro that swallowed its content, a broken theme) is
caught. Chromium comes from Debian (`make browser`, part of `make test`); without it the test
skips with the reason, except in CI, where it fails. `make screenshots` keeps the pictures in
`site/screenshots/`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: headless, and no network: the machine's closed network refuses Chromium's background calls
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
#: page of the site -> a phrase its rendered article must hold
PAGES = {
    "index.html": "which training data caused this prediction",
    "tutorials/default-study/index.html": "read the answer",
}


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        reason = "Chromium is not installed (`make browser` installs Debian's)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so this fails")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)]
    subprocess.run(command, cwd=REPO, check=True, env=env)
    return out


def chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def screenshot(browser: str, url: str, path: Path) -> Path:
    chromium(
        browser, path.parent / "profile", "--window-size=1280,900", f"--screenshot={path}", url
    )
    return path


def article_text(html: str) -> str:
    """The rendered page's main text: the theme's article, without markup."""
    found = re.search(r"<article[^>]*>(.*?)</article>", html, flags=re.S)
    if found is None:
        return ""
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", found[1], flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()


def ink(png: Path) -> float:
    """The share of pixels that differ from the page's background (its most common colour)."""
    import matplotlib.image

    pixels = (matplotlib.image.imread(png)[..., :3] * 255).round().astype(np.uint8)
    flat = pixels.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    return float(np.any(flat != background, axis=1).mean())


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_page_of_the_built_site_renders_with_its_content(browser, site, tmp_path, page):
    url = (site / page).as_uri()
    dom = chromium(browser, tmp_path / "profile", "--dump-dom", url).stdout
    text = article_text(dom)
    assert PAGES[page] in text.lower()
    assert len(text) > 1000
    shot = screenshot(browser, url, tmp_path / (page.replace("/", "_") + ".png"))
    assert ink(shot) > 0.03  # text, navigation and pictures, not a blank page
    keep = os.environ.get("AME_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, Path(keep) / shot.name)


def test_a_page_that_renders_empty_is_caught(browser, tmp_path):
    page = tmp_path / "empty.html"
    page.write_text("<html><body><article class='md-content__inner'></article></body></html>")
    dom = chromium(browser, tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    assert article_text(dom) == ""
    assert ink(screenshot(browser, page.as_uri(), tmp_path / "empty.png")) < 0.001
