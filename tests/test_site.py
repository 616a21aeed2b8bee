"""The course site: built from the tutorials (quick runs), opened in a real headless browser.

Needs chromium and its driver (Debian: apt-get install -y chromium chromium-driver) and selenium; the
test is skipped, with the reason, when they are missing. The browser is the system's: nothing is
downloaded. A screenshot of the page is saved into the test's folder and its path printed.
"""

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = "03_one_by_one_convolutions"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("nbclient", reason="building the site needs nbclient: pip install -e '.[test]'")
    pytest.importorskip("nbconvert", reason="building the site needs nbconvert: pip install -e '.[test]'")
    from tinyresnet.course import site as builder

    out = tmp_path_factory.mktemp("site")
    pages = builder.build(out, quick=True, only=["03", "10"], log=print)
    return out, pages


def figures_of(stem):
    text = (ROOT / "tutorials" / f"{stem}.py").read_text(encoding="utf-8")
    return re.findall(r"save_figure\([^)]*?\"([^\"]+\.png)\"", text)


def test_the_site_has_an_index_pages_and_notebooks(site):
    out, pages = site
    index = (out / "index.html").read_text(encoding="utf-8")
    for stem, title, shown in pages:
        assert f'href="{stem}.html"' in index and title.startswith(stem[:2] + " · ")
        assert shown >= len(figures_of(stem))
        assert (out / "notebooks" / f"{stem}.ipynb").is_file() and (out / f"{stem}.html").is_file()


def test_pages_load_nothing_from_outside(site):
    out, pages = site
    for stem, _, _ in pages:
        page = (out / f"{stem}.html").read_text(encoding="utf-8")
        remote = re.findall(r"(?:src|href)=\"(https?://[^\"]+)\"|import\(\s*\"(https?://[^\"]+)\"", page)
        assert not remote, f"{stem}.html loads {remote[:3]}"
        assert page.count("data:image/png;base64,") >= len(figures_of(stem))      # figures embedded
        assert "<details><summary>Solution" in page and "<details open" not in page  # solutions folded


def test_a_browser_shows_the_figures(site, tmp_path):
    if not (CHROMIUM and DRIVER):
        pytest.skip("chromium and chromedriver are not installed (apt-get install -y chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the test extra)")
    from selenium.webdriver.chrome.service import Service

    out, _ = site
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1200,900"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        browser.get((out / f"{PAGE}.html").as_uri())
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);")
        drawn = [img for img in images if img[0] and img[1] > 0 and img[2] > 0]
        assert len(drawn) >= len(figures_of(PAGE)), f"images on the page (complete, width, height): {images}"
        closed = browser.execute_script("return Array.from(document.querySelectorAll('details')).map(d => d.open);")
        assert closed and not any(closed), "the solutions should be folded away when the page opens"
        title = browser.execute_script("return document.querySelector('h1').textContent;")
        assert title.startswith("03 · ")
        figure = browser.find_elements("css selector", "img")[0]
        browser.execute_script("arguments[0].scrollIntoView();", figure)
        shot = tmp_path / f"{PAGE}.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        print(f"\nscreenshot of the site's page {PAGE}.html: {shot}")
    finally:
        browser.quit()
