"""The gallery site in a real browser: headless Chromium from the system's packages.

The test builds the site through the command line (``sandbox site --out DIR``, notebooks
executed), opens ``index.html`` from disk (``file://``, no server) and follows every internal
link. On every page it requires: no console error (a missing file, a script error, a blocked
resource all log one), every image decoded (``naturalWidth > 0``), every internal link and
``#anchor`` resolving. The index must show one card per experiment. Screenshots of the index,
an experiment page and a notebook go to ``artifacts/site/`` (``$SANDBOX_ARTIFACTS``), which CI
uploads.

The browser is never downloaded: Chromium and its driver come from the system's package
manager (Debian: ``apt-get install -y chromium chromium-driver``; ``.ci/run`` installs them when
missing). Without them the test FAILS and says so: it is never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from sandbox.cli import main
from sandbox.notebooks import notebook_paths
from sandbox.registry import experiment_dirs

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("SANDBOX_ARTIFACTS", ROOT / "artifacts")) / "site"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)
SHOTS = {
    "index.html": "index.png",
    "experiments/kernel_stability/index.html": "experiment-kernel_stability.png",
    "discussions/0008-the-activation-patterns-that-flip.html": "notebook-0008.png",
}
# Every image is decoded (or failed) before the list is returned.
IMAGES_JS = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
Promise.all(imgs.map(i => i.decode().catch(() => null)))
  .then(() => done(imgs.map(i => [i.getAttribute('src').slice(0, 80), i.naturalWidth])));
"""


def find_chromium(env=os.environ) -> tuple[str, str]:
    """``(browser, driver)``: ``$SANDBOX_CHROMIUM`` / ``$SANDBOX_CHROMEDRIVER``, else the
    system's packages on the ``PATH`` (``$CHROMEWEBDRIVER`` is where GitHub's runners keep
    the driver). Fails, with what to install, when either is missing."""
    path = env.get("PATH", "")
    browser = env.get("SANDBOX_CHROMIUM") or next(
        (b for name in BROWSERS if (b := shutil.which(name, path=path))), None
    )
    driver = env.get("SANDBOX_CHROMEDRIVER") or shutil.which("chromedriver", path=path)
    if driver is None and env.get("CHROMEWEBDRIVER"):
        candidate = Path(env["CHROMEWEBDRIVER"]) / "chromedriver"
        driver = str(candidate) if candidate.is_file() else None
    missing = [n for n, p in (("a Chromium browser", browser), ("chromedriver", driver)) if not p]
    if missing:
        pytest.fail(
            f"no browser for the site test: {' and '.join(missing)} not found on the PATH. "
            "Install the system's packages (Debian: `apt-get install -y chromium chromium-driver`; "
            "`.ci/run` does this when they are missing) or set SANDBOX_CHROMIUM and "
            "SANDBOX_CHROMEDRIVER. This test is never skipped.",
            pytrace=False,
        )
    return browser, driver


def test_a_missing_browser_fails_with_what_to_install():
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium chromium-driver"):
        find_chromium({"PATH": "/nonexistent"})


def _launch(browser: str, driver: str, profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not try to fetch anything
    return webdriver.Chrome(service=Service(driver), options=opts)


def _file_of(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


def _screenshot(drv, path: Path) -> None:
    height = drv.execute_script("return document.documentElement.scrollHeight")
    drv.set_window_size(1400, min(max(height, 800), 6000))
    drv.save_screenshot(str(path))
    drv.set_window_size(1400, 1000)


def test_the_site_in_headless_chromium(tmp_path):
    browser, driver = find_chromium()
    out = tmp_path / "site"
    start = time.perf_counter()
    assert main(["--root", str(ROOT), "site", "--out", str(out)]) == 0
    build_s = time.perf_counter() - start
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    drv = _launch(browser, driver, tmp_path / "profile")
    problems: list[str] = []
    anchors: dict[Path, set[str]] = {}  # page -> ids other pages link to
    ids: dict[Path, set[str]] = {}
    seen: set[Path] = set()
    queue = deque([out / "index.html"])
    external = 0
    try:
        drv.set_page_load_timeout(60)
        drv.set_script_timeout(30)
        while queue:
            page = queue.popleft()
            if page in seen:
                continue
            seen.add(page)
            name = page.relative_to(out).as_posix()
            drv.get(page.as_uri())
            for entry in drv.get_log("browser"):
                if entry["level"] in ("SEVERE", "ERROR"):
                    problems.append(f"{name}: console error: {entry['message']}")
            for src, width in drv.execute_async_script(IMAGES_JS):
                if not width:
                    problems.append(f"{name}: image did not load: {src}")
            ids[page] = set(
                drv.execute_script("return [...document.querySelectorAll('[id]')].map(e => e.id)")
            )
            hrefs = drv.execute_script(
                "return [...document.querySelectorAll('a[href], link[href]')].map(a => a.href)"
            )
            for href in hrefs:
                parts = urlsplit(href)
                if parts.scheme != "file":
                    external += 1
                    continue
                target = _file_of(href)
                if not target.is_file() or not target.is_relative_to(out):
                    problems.append(f"{name}: link does not resolve: {href}")
                    continue
                if parts.fragment:
                    anchors.setdefault(target, set()).add(unquote(parts.fragment))
                if target.suffix == ".html":
                    queue.append(target)
            if name == "index.html":
                cards = drv.execute_script(
                    "return document.querySelectorAll('article.card').length"
                )
                if cards != len(experiment_dirs(ROOT)):
                    problems.append(
                        f"index: {cards} cards for {len(experiment_dirs(ROOT))} experiments"
                    )
            if name in SHOTS:
                _screenshot(drv, ARTIFACTS / SHOTS[name])
        for page, wanted in anchors.items():
            missing = wanted - ids.get(page, set())
            if missing:
                problems.append(f"{page.relative_to(out)}: no element with id {sorted(missing)}")
    finally:
        drv.quit()
    browse_s = time.perf_counter() - start

    pages = {p.relative_to(out).as_posix() for p in seen}
    expected = {f"experiments/{d.name}/index.html" for d in experiment_dirs(ROOT)}
    expected |= {f"discussions/{p.stem}.html" for p in notebook_paths(ROOT)}
    expected |= {"reproductions.html", "discussions/index.html", "about.html"}
    timings = {
        "build_s": round(build_s, 1),
        "site_bytes": size,
        "browser_s": round(browse_s, 1),
        "pages": len(seen),
        "external_links": external,
    }
    (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    print(timings)
    assert not problems, "\n".join(problems)
    assert expected <= pages, f"never reached from the index: {sorted(expected - pages)}"
    for shot in SHOTS.values():
        assert (ARTIFACTS / shot).stat().st_size > 10_000, shot
