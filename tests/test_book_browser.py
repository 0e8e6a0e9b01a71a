"""The built book in a real browser: headless Chromium (Debian's) driven by Selenium.

For every page: no console errors, every request served by the local server and successful,
math typeset by the vendored MathJax, every image loaded, every animation plays, every internal
link resolves, and the notebook download works. The search page must find ``output_padding``.
At every width from 768 px (a small tablet held upright) to 1920 px a chapter's code boxes show
the columns its code is wrapped to; on a 390 px phone they show 60 columns and a longer line
scrolls inside its box, never the page, no output (image, animation player, widget) is wider
than its box, and a figure too small to read there opens at its full size on a tap.
Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from skips import skip_or_fail
from test_book_build import (  # each chapter's exercise notebooks; the code boxes' columns
    CELL_COLUMNS,
    EXERCISES,
    HIDDEN_CELL_COLUMNS,
    INCLUDE_COLUMNS,
    OUTPUT_COLUMNS,
)

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("book-browser")]

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _toc_pages() -> list[str]:
    """Every page of the book: the root and each file of ``_toc.yml``, plus Sphinx's index and
    search pages (``test_every_built_page_is_checked`` makes sure nothing built is left out)."""
    files = re.findall(r"^\s*(?:root|- file):\s*(\S+)\s*$",
                       (ROOT / "_toc.yml").read_text(encoding="utf-8"), re.M)
    return ["index.html"] + [f"{f}.html" for f in files] + ["genindex.html", "search.html"]


PAGES = _toc_pages()
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1600"]


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        skip_or_fail(f"headless browser test needs Debian's chromium and chromium-driver; "
                     f"missing {missing} (apt-get install chromium chromium-driver, or "
                     f"scripts/sysdeps.sh)")
    pytest.importorskip("selenium")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):      # the browser moved on
            pass


@pytest.fixture(scope="module")
def server(built_book: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def driver() -> Iterator[object]:
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tconv-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(60)
    drv.set_script_timeout(60)
    drv.get("about:blank")                      # let the browser's own start-up traffic settle
    time.sleep(1.0)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def _network_problems(drv, base: str) -> list[str]:
    """Requests to other hosts, failed loads and HTTP errors, from the performance log.

    Only requests made by documents of this site count (the browser's own start-up traffic,
    e.g. for its new-tab page, is not the book's)."""
    problems, ours = [], {}
    for entry in drv.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not params.get("documentURL", "").startswith(base):
                continue
            ours[params["requestId"]] = url
            web = url.startswith(("http:", "https:", "ws:", "wss:", "ftp:", "//"))
            if web and not url.startswith(base):
                problems.append(f"request to another host: {url}")
        elif method == "Network.loadingFailed" and params.get("requestId") in ours:
            if not params.get("canceled"):
                problems.append(f"failed load ({params.get('errorText')}): "
                                f"{ours[params['requestId']]}")
        elif method == "Network.responseReceived":
            resp = params["response"]
            if resp["url"].startswith(base) and resp.get("status", 200) >= 400:
                problems.append(f"HTTP {resp['status']}: {resp['url']}")
    return problems


def _fragment_exists(built_book: Path, server: str, href: str) -> bool:
    """Whether the #fragment of an internal link names an element of the target page."""
    url = urllib.parse.urlsplit(href)
    if not url.fragment:
        return True
    path = urllib.parse.unquote(url.path).lstrip("/")
    target = built_book / (path or "index.html")
    if target.is_dir():
        target = target / "index.html"
    if target.suffix != ".html" or not target.is_file():
        return True                                  # not a page; its status is checked above
    frag = re.escape(urllib.parse.unquote(url.fragment))
    return re.search(rf"""\b(id|name)=["']{frag}["']""", target.read_text(encoding="utf-8")) \
        is not None


def test_every_built_page_is_checked(built_book: Path) -> None:
    built = sorted(str(p.relative_to(built_book)) for p in built_book.rglob("*.html")
                   if not {"_static", "_sources", "_downloads", "_images"} & set(p.parts))
    unchecked = sorted(set(built) - set(PAGES))
    assert not unchecked, f"built pages the browser test does not open: {unchecked}"
    absent = sorted(set(PAGES) - set(built))
    assert not absent, f"pages of _toc.yml missing from the build: {absent}"


WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const ready = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)
    ? MathJax.startup.promise.then(() => done(true), () => done(false)) : done(null);
if (document.readyState === 'complete') { setTimeout(ready, 50); }
else { window.addEventListener('load', () => setTimeout(ready, 50)); }
"""

BODY_TEXT = """
const main = document.querySelector('main') || document.body;
const clone = main.cloneNode(true);
clone.querySelectorAll('pre, code, .highlight, script, style, mjx-container, .output')
     .forEach(e => e.remove());
return clone.innerText;
"""


@pytest.mark.parametrize("page", PAGES)
def test_page(driver, server: str, built_book: Path, page: str) -> None:
    drv = driver
    drv.get_log("browser")
    drv.get_log("performance")                      # drop what earlier pages left
    drv.get(server + page)
    mathjax = drv.execute_async_script(WAIT_FOR_MATHJAX)
    time.sleep(0.3)

    # math: typeset by MathJax, nothing raw left in the prose
    html = (built_book / page).read_text(encoding="utf-8")
    if 'class="math' in html:
        assert mathjax is True, f"{page}: MathJax did not start ({mathjax})"
        n = drv.execute_script("return document.querySelectorAll('mjx-container').length")
        assert n > 0, f"{page}: math on the page but no mjx-container"
    text = drv.execute_script(BODY_TEXT)
    for raw in ("$$", "\\(", "\\[", "\\begin{"):
        assert raw not in text, f"{page}: raw TeX {raw!r} visible in the page text"

    # images: every one loaded (animations included)
    broken = drv.execute_script(
        "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.src.slice(0, 80))")
    assert not broken, f"{page}: images that did not load: {broken}"

    # animations: clicking Play advances the frame
    anims = drv.execute_script(
        "return [...document.querySelectorAll('img[id^=_anim_img]')].map(i => i.id)")
    for img_id in anims:
        uid = img_id[len("_anim_img"):]
        slider = f"_anim_slider{uid}"
        drv.execute_script(f"anim{uid}.first_frame()")
        before = drv.execute_script(f"return document.getElementById('{slider}').value")
        drv.find_element("css selector", f"button[onclick='anim{uid}.play_animation()']").click()
        deadline, after = time.time() + 10, before
        while time.time() < deadline and after == before:
            time.sleep(0.2)
            after = drv.execute_script(f"return document.getElementById('{slider}').value")
        src = drv.execute_script(f"return document.getElementById('{img_id}').src.length")
        assert after != before and src > 100, f"{page}: animation {uid} does not play"
        drv.execute_script(f"anim{uid}.pause_animation()")

    # internal links resolve, and so do their #fragments; the notebook download is among them
    # on book pages, and a chapter's exercise notebooks too
    hrefs = set(drv.execute_script(
        "return [...document.querySelectorAll('a[href]')].map(a => a.href)"))
    internal = sorted({h.split("#")[0] for h in hrefs if h.startswith(server)})
    bad = [h for h in internal if _status(h) != 200]
    assert not bad, f"{page}: internal links that do not resolve: {bad}"
    missing = [h for h in sorted(hrefs) if h.startswith(server)
               and not _fragment_exists(built_book, server, h)]
    assert not missing, f"{page}: links to #anchors that do not exist: {missing}"
    if page.startswith("book/"):
        notebooks = [h for h in internal if h.endswith(".ipynb") and "/_sources/" in h]
        assert notebooks, f"{page}: no .ipynb download link"
        with urllib.request.urlopen(notebooks[0], timeout=10) as resp:
            assert json.loads(resp.read())["nbformat"] == 4
    chapter = Path(page).stem
    for ex in EXERCISES.get(chapter, []):
        links = [h for h in internal if h.endswith(f"/{ex}.ipynb")]
        assert links, f"{page}: no link to the exercise {ex}"
        for link in links:
            with urllib.request.urlopen(link, timeout=10) as resp:      # raises on a 404
                assert json.loads(resp.read())["nbformat"] == 4, f"{page}: {link}"

    # screenshot, then the logs: no console errors, no request off the site, no failed load
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = drv.execute_script("return Math.min(document.documentElement.scrollHeight, 20000)")
    drv.set_window_size(1280, max(height, 800))               # the whole page in one image
    drv.save_screenshot(str(SHOTS / (page.replace("/", "_").removesuffix(".html") + ".png")))
    drv.set_window_size(1280, 1600)
    errors = [e["message"] for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"{page}: console errors: {errors}"
    problems = _network_problems(drv, server)
    assert not problems, f"{page}: network problems: {problems}"
    resources = drv.execute_script(
        "return performance.getEntriesByType('resource').map(r => r.name)")
    foreign = [r for r in resources if r.startswith(("http:", "https:", "//"))
               and not r.startswith(server)]
    assert not foreign, f"{page}: resources from elsewhere: {foreign}"


def test_search_finds_output_padding(driver, server: str) -> None:
    drv = driver
    drv.get(server + "search.html?q=output_padding")
    deadline, results = time.time() + 30, []
    while time.time() < deadline and not results:
        time.sleep(0.5)
        results = drv.execute_script(
            "return [...document.querySelectorAll('#search-results li a, ul.search li a')]"
            ".map(a => a.href)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(SHOTS / "search_output_padding.png"))
    assert results, "the search page found nothing for output_padding"
    assert any("04_shapes_padding" in r for r in results), results
    errors = [e["message"] for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"search page: console errors: {errors}"


# The code boxes against the columns their lines are wrapped to (tests/test_book_build.py): at
# every width from 960 px a box shows its budget of monospace characters without scrolling.
# 960 px is the narrowest window with the chapters' sidebar on the left (below, it is a drawer),
# and up to 992 px the theme made that sidebar wider (25% of the page, not 20%: 72 columns at
# 960 px, 73 at 970); 1200 px is the narrowest window with both sidebars (the page contents
# appears on the right there), 1024 a laptop with it folded away, 1280, 1440 and 1920 common
# desktops; 768 a small tablet held upright (both sidebars are drawers there). On a phone a
# box shows 60 columns (test_a_phone_shows_60_columns_of_code) and longer lines scroll inside
# it, but the page itself must not scroll sideways.
BOX_PAGE = "book/05_fast.html"   # input, output and library boxes, in and out of a <details>
BOX_WIDTHS = [768, 960, 970, 991, 1024, 1200, 1280, 1440, 1920]
PHONE_WIDTH = 390

# every code box of the page (its <details> opened): what it is, and how many characters of its
# monospace font it shows (the box's clientWidth less its padding, over the width of one
# character); then the box filled with a line of exactly its budget, which must not make it scroll
CODE_BOXES = r"""
const budgets = arguments[0];
document.querySelectorAll('main details').forEach(d => { d.open = true; });
const boxes = [];
for (const pre of document.querySelectorAll('main div.highlight > pre')) {
  const kind = pre.closest('div.cell_input') ? 'input'
             : pre.closest('div.cell_output') ? 'output' : 'include';
  const hidden = pre.closest('details') !== null;
  const budget = hidden ? budgets.hidden : budgets[kind];
  const saved = [...pre.childNodes];
  const line = document.createElement('span');
  line.style.whiteSpace = 'pre';                 // no wrapping, in a wrap-output box too
  line.textContent = '0'.repeat(100);
  pre.replaceChildren(line);
  const style = getComputedStyle(pre);
  const char = line.getBoundingClientRect().width / 100;
  const inner = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  line.textContent = '0'.repeat(budget);
  const scrolls = pre.scrollWidth > pre.clientWidth;
  pre.replaceChildren(...saved);
  boxes.push({kind, hidden, budget, scrolls, shown: Math.floor(inner / char + 1e-6),
              font: style.fontSize});
}
return boxes;
"""


def _code_boxes(drv, server: str, width: int) -> list[dict]:
    drv.set_window_size(width, 1000)
    drv.get(server + BOX_PAGE)
    drv.execute_async_script(WAIT_FOR_MATHJAX)
    assert drv.execute_script("return window.innerWidth") == width
    budgets = {"input": CELL_COLUMNS, "output": OUTPUT_COLUMNS, "include": INCLUDE_COLUMNS,
               "hidden": HIDDEN_CELL_COLUMNS}
    return drv.execute_script(CODE_BOXES, budgets)


@pytest.mark.parametrize("width", BOX_WIDTHS)
def test_code_boxes_show_their_columns(driver, server: str, width: int) -> None:
    """The narrowest box of each kind (code cell input, printed output, included library code,
    each also inside a hide-input/hide-output <details>) shows the columns its lines are wrapped
    to: 75 for an input, 76 for an output or included code, 73 inside a <details>."""
    try:
        boxes = _code_boxes(driver, server, width)
    finally:
        driver.set_window_size(1280, 1600)
    narrowest: dict[str, dict] = {}
    for box in boxes:
        name = box["kind"] + (" in <details>" if box["hidden"] else "")
        if name not in narrowest or box["shown"] < narrowest[name]["shown"]:
            narrowest[name] = box
    kinds = {"input", "output", "include", "input in <details>", "output in <details>"}
    assert kinds <= set(narrowest), (f"{BOX_PAGE} no longer has every kind of code box: found "
                                     f"{sorted(narrowest)}; pick a page with {sorted(kinds)}")
    short = [f"{name}: {box['shown']} characters of its {box['font']} font, wrapped to "
             f"{box['budget']}"
             f"{'; a line of that length scrolls' if box['scrolls'] else ''}"
             for name, box in sorted(narrowest.items())
             if box["scrolls"] or box["shown"] < box["budget"]]
    assert not short, (f"at {width} px the narrowest code boxes of {BOX_PAGE} show fewer "
                       f"characters than their lines hold (book/_static/tconv.css):\n"
                       + "\n".join(short))


def test_a_phone_scrolls_code_in_its_box_not_the_page(driver, server: str) -> None:
    """At 390 px a code box shows 60 columns and scrolls, inside itself: the page does not
    scroll sideways, and no code box reaches past the window."""
    try:
        boxes = _code_boxes(driver, server, PHONE_WIDTH)
        page = driver.execute_script(
            "const e = document.documentElement;"
            "return [e.scrollWidth, e.clientWidth, [...document.querySelectorAll("
            "'main div.highlight > pre')].filter(p => p.getBoundingClientRect().right > "
            "e.clientWidth + 0.5).length]")
    finally:
        driver.set_window_size(1280, 1600)
    assert boxes and min(b["shown"] for b in boxes) >= 30, boxes
    scroll_width, client_width, past = page
    assert scroll_width <= client_width, f"the page scrolls sideways: {scroll_width} px wide"
    assert not past, f"{past} code boxes reach past the {client_width} px window"


# What a chapter shows in an output besides text: images (figures, plots, an animation's frame),
# an animation's player, a widget, anything embedded. Code and printed text are left out: they
# scroll in their own box, on purpose (above).
MEDIA = ("img, svg, canvas, video, audio, iframe, object, embed, .animation, .jupyter-widgets, "
         ".widget-area, .widget-subarea")

# every output element of the page against its box: the nearest output container (MyST-NB's
# div.output inside a cell's div.cell_output, or a glued output's), whose content box the
# element must not pass on either side (the output box scrolls sideways, and cuts the element
# off, where it does)
OUTPUT_MEDIA = r"""
const media = arguments[0];
const checked = {}, wide = [];
for (const el of document.querySelectorAll(`main .bd-article :is(${media})`)) {
  const box = el.parentElement.closest('div.output, div.cell_output');
  if (!box || el.closest('pre, div.highlight, mjx-container')) continue;
  const kind = el.matches('.animation') ? 'animation player'
             : el.matches('.jupyter-widgets, .widget-area, .widget-subarea') ? 'widget'
             : el.tagName.toLowerCase();
  checked[kind] = (checked[kind] || 0) + 1;
  const r = el.getBoundingClientRect(), b = box.getBoundingClientRect(), s = getComputedStyle(box);
  const left = b.left + box.clientLeft + parseFloat(s.paddingLeft);
  const right = b.left + box.clientLeft + box.clientWidth - parseFloat(s.paddingRight);
  if (r.width > 0 && (r.right > right + 0.5 || r.left < left - 0.5)) {
    const name = el.id || el.getAttribute('alt') || el.getAttribute('class') || '';
    wide.push(`${kind} ${name}`.slice(0, 70)
              + `: ${r.width.toFixed(0)} px wide, reaches ${Math.max(r.right - right,
                 left - r.left).toFixed(0)} px past its ${(right - left).toFixed(0)} px box`);
  }
}
const e = document.documentElement;
return {checked, wide, scroll: [e.scrollWidth, e.clientWidth]};
"""


def test_outputs_fit_their_boxes_on_a_phone(driver, server: str) -> None:
    """At 390 px no output element of any page (a figure, chapter 2's animation player, a
    widget) is wider than its output box, where its right edge would be cut off (the box scrolls
    sideways), and no page scrolls sideways."""
    checked: dict[str, int] = {}
    wide, scrolls = [], []
    try:
        driver.set_window_size(PHONE_WIDTH, 1000)
        for page in PAGES:
            driver.get(server + page)
            driver.execute_async_script(WAIT_FOR_MATHJAX)
            found = driver.execute_script(OUTPUT_MEDIA, MEDIA)
            for kind, n in found["checked"].items():
                checked[kind] = checked.get(kind, 0) + n
            wide += [f"{page}: {w}" for w in found["wide"]]
            scroll_width, client_width = found["scroll"]
            if scroll_width > client_width:
                scrolls.append(f"{page}: {scroll_width} px wide in a {client_width} px window")
    finally:
        driver.set_window_size(1280, 1600)
    assert checked.get("img") and checked.get("animation player"), (
        f"the book's outputs no longer have the images and the animation player this test is "
        f"for: found {checked}")
    assert not wide, (f"at {PHONE_WIDTH} px, outputs wider than their box, cut off on the right "
                      f"(book/_static/tconv.css):\n" + "\n".join(wide))
    assert not scrolls, "pages that scroll sideways on a phone:\n" + "\n".join(scrolls)


# A phone as Chromium's device emulation makes it: 390 x 844 CSS px at 3 device pixels per CSS
# pixel, a mobile viewport (the page's <meta name=viewport>, overlay scroll bars, and a page
# wider than the window zooms out to show all of it, so innerWidth grows). A tablet: 768 x 1024
# at 2.
PHONE = (390, 844, 3)
TABLET = (768, 1024, 2)
CHAPTERS = [p for p in PAGES if re.fullmatch(r"book/\d\d_\w+\.html", p)]


@contextlib.contextmanager
def _device(drv, device: tuple[int, int, int]) -> Iterator[None]:
    width, height, scale = device
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": scale, "mobile": True})
    try:
        yield
    finally:
        drv.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        drv.set_window_size(1280, 1600)


def _open(drv, server: str, page: str) -> None:
    drv.get(server + page)
    drv.execute_async_script(WAIT_FOR_MATHJAX)


# the page's width against the window's: a mobile browser zooms a page out to show an element
# that reaches past the window, so innerWidth grows past the device's width
PAGE_WIDTH = """
const e = document.documentElement;
return [window.innerWidth, e.scrollWidth, e.clientWidth];
"""

# every code box (each <details> opened): the characters of its font it shows (its clientWidth
# less its padding, over the width of one character), its font size, and how many of its lines
# are no longer than that (all of them in a box that wraps)
CODE_LINES = r"""
document.querySelectorAll('main details').forEach(d => { d.open = true; });
const boxes = [];
for (const pre of document.querySelectorAll('main div.highlight > pre')) {
  const style = getComputedStyle(pre);
  const probe = document.createElement('span');
  probe.style.whiteSpace = 'pre';
  probe.textContent = '0'.repeat(100);
  pre.append(probe);
  const char = probe.getBoundingClientRect().width / 100;
  probe.remove();
  const inner = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const shown = Math.floor(inner / char + 1e-6);
  const lines = pre.textContent.replace(/\n$/, '').split('\n');
  const wraps = style.whiteSpace.startsWith('pre-wrap');
  boxes.push({shown, font: parseFloat(style.fontSize), lines: lines.length,
              hidden: pre.closest('details') !== null,
              fit: wraps ? lines.length : lines.filter(l => l.length <= shown).length});
}
return boxes;
"""


def test_a_phone_shows_60_columns_of_code(driver, server: str) -> None:
    """On a 390 px phone every code box of every chapter shows at least 60 columns (56 inside a
    hide-input/hide-output <details>, whose box is indented) in a font of at least 10 px, so
    that most lines of code wrapped to 75 columns fit: at least 60% of them in every chapter.
    At the theme's 14 px a box showed 38 columns and 26% to 46% of a chapter's lines fitted."""
    short, fits, wide = [], [], []
    with _device(driver, PHONE):
        for page in CHAPTERS:
            _open(driver, server, page)
            boxes = driver.execute_script(CODE_LINES)
            inner_width, scroll_width, _ = driver.execute_script(PAGE_WIDTH)
            if inner_width != PHONE[0] or scroll_width > PHONE[0]:
                wide.append(f"{page}: {scroll_width} px wide, the window {inner_width} px")
            assert boxes, f"{page}: no code boxes"
            for box in boxes:
                need = 56 if box["hidden"] else 60
                if box["shown"] < need or box["font"] < 10:
                    short.append(f"{page}: {box['shown']} columns of a {box['font']:.1f} px font"
                                 f"{' in a <details>' if box['hidden'] else ''}")
            fit = sum(b["fit"] for b in boxes) / sum(b["lines"] for b in boxes)
            fits.append(f"{page}: {fit:.0%}")
            if fit < 0.6:
                short.append(f"{page}: {fit:.0%} of the lines fit their box")
    assert not wide, "pages that scroll sideways on a phone:\n" + "\n".join(wide)
    assert not short, (f"on a {PHONE[0]} px phone, code boxes that show too little "
                       f"(book/_static/tconv.css; lines that fit: {', '.join(fits)}):\n"
                       + "\n".join(sorted(set(short))))


# every figure of the page (each <details> opened; animations' frames aside: their player is
# their control): the width it is drawn at and the width it is shown at, whether its cell runs
# edge to edge (not inside a note or a <details>), and its "Full size" button
# (book/_static/tconv.js) if one is shown
FIGURES = r"""
document.querySelectorAll('main details').forEach(d => { d.open = true; });
const figures = [];
document.querySelectorAll('main .bd-article figure img').forEach((img, i) => {
  if (img.closest('.animation')) return;
  const button = img.closest('figure').querySelector('button.tconv-zoom-open');
  const b = button && button.getBoundingClientRect();
  figures.push({i, name: (img.closest('figure').querySelector('.caption-number') || {})
                .textContent || img.src.split('/').pop().slice(0, 12),
                natural: img.naturalWidth, shown: img.getBoundingClientRect().width,
                edge: !img.closest('details, .admonition'),
                button: b && b.width ? [b.width, b.height, b.left, b.right] : null});
});
return figures;
"""

IMG_OF = "return [...document.querySelectorAll('main .bd-article figure img')][arguments[0]]"
BUTTON_OF = IMG_OF + ".closest('figure').querySelector('button.tconv-zoom-open')"

# after a figure's button was tapped: the full-screen view: whether it is open, the image's width
# (less its padding) against its own, and whether the view can pan to every part of it
OPENED = r"""
const view = document.querySelector('dialog.tconv-zoom');
if (!view || !view.open) return null;
const img = view.querySelector('img'), pane = view.querySelector('.tconv-zoom-pane');
const s = getComputedStyle(img);
return {shown: img.getBoundingClientRect().width - parseFloat(s.paddingLeft)
               - parseFloat(s.paddingRight),
        natural: img.naturalWidth, src: img.src,
        pans: pane.scrollWidth >= img.getBoundingClientRect().width - 0.5};
"""

# 10-point text (matplotlib's default size) in a figure drawn at 100 dpi is 13.9 px of the image
TEXT_PX = 10 / 72 * 100
READABLE_PX = 9


@pytest.mark.parametrize("device", [PHONE, TABLET], ids=["phone-390", "tablet-768"])
def test_a_phone_shows_figures_full_size_on_a_tap(driver, server: str,
                                                  device: tuple[int, int, int]) -> None:
    """Every figure of every chapter is readable: shown large enough that its 10-point text is at
    least 9 px, or with a "Full size" button (44 px high, inside the window) that opens it in a
    full-screen view at its own size, which pans to every part of it, and closes again (the
    first two such figures of a page are opened, one by its button, one by a tap on it). On a
    phone a figure of a cell outside a note or a <details> takes the window's whole width (or its
    own, if narrower). Before, a 390 px phone showed the chapters' figures 342 px wide, their
    text at 5 to 8 px, with no way to enlarge them but pinching the page."""
    from selenium.webdriver.common.by import By

    width = device[0]
    problems, counted, tapped = [], 0, 0
    with _device(driver, device):
        for page in CHAPTERS:
            _open(driver, server, page)
            opened_here = 0
            for fig in driver.execute_script(FIGURES):
                counted += 1
                name = f"{page} {fig['name']} ({fig['natural']} px drawn, {fig['shown']:.0f} shown)"
                text = TEXT_PX * fig["shown"] / fig["natural"]
                if width == PHONE[0] and fig["edge"] and fig["shown"] < min(fig["natural"],
                                                                            width) - 0.5:
                    problems.append(f"{name}: narrower than the {width} px window")
                if text >= READABLE_PX:
                    continue
                if not fig["button"]:
                    problems.append(f"{name}: text at {text:.1f} px and no Full size button")
                    continue
                bw, bh, left, right = fig["button"]
                if bh < 44 or left < 0 or right > width:
                    problems.append(f"{name}: its button is {bw:.0f} x {bh:.0f} px at "
                                    f"{left:.0f}-{right:.0f}")
                if opened_here == 2:            # the same code opens them all: two a page
                    continue
                opened_here += 1
                tapped += 1                     # a tap on the button, or on the figure itself
                target = driver.execute_script(BUTTON_OF if tapped % 2 else IMG_OF, fig["i"])
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", target)
                y = driver.execute_script("return window.scrollY")
                target.click()
                opened = driver.execute_script(OPENED)
                if not opened:
                    problems.append(f"{name}: a tap on its {'button' if tapped % 2 else 'image'}"
                                    f" opens nothing")
                    continue
                big = TEXT_PX * opened["shown"] / opened["natural"]
                if big < READABLE_PX or not opened["pans"]:
                    problems.append(f"{name}: opened {opened['shown']:.0f} px wide (text "
                                    f"{big:.1f} px){'' if opened['pans'] else ', cut off'}")
                driver.find_element(By.CSS_SELECTOR, "dialog.tconv-zoom .tconv-zoom-close").click()
                deadline = time.time() + 5
                while time.time() < deadline and driver.execute_script(OPENED):
                    time.sleep(0.05)
                if driver.execute_script(OPENED) or not driver.current_url.endswith(page):
                    problems.append(f"{name}: Close leaves {driver.current_url}, view open: "
                                    f"{bool(driver.execute_script(OPENED))}")
                    _open(driver, server, page)
                elif abs(driver.execute_script("return window.scrollY") - y) > 1:
                    problems.append(f"{name}: Close leaves the page scrolled elsewhere")
            inner_width, scroll_width, _ = driver.execute_script(PAGE_WIDTH)
            if inner_width != width or scroll_width > width:
                problems.append(f"{page}: {scroll_width} px wide, the window {inner_width} px")
    assert counted > 20, f"the chapters have only {counted} figures: is FIGURES out of date?"
    assert not problems, (f"at {width} px, figures a reader cannot read (book/_static/tconv.js, "
                          f"tconv.css):\n" + "\n".join(problems))


# every display equation of the page: its font size against that of the page's inline math
# (which nothing resizes), its width against its box's, and whether the box scrolls sideways
DISPLAY_MATH = r"""
const inline = document.querySelector('main mjx-container:not([display="true"])');
const ref = inline ? parseFloat(getComputedStyle(inline).fontSize) : null;
return [...document.querySelectorAll('main mjx-container[display="true"]')].map((m, i) => {
  const s = getComputedStyle(m);
  return {i, ref, size: parseFloat(s.fontSize), width: m.scrollWidth, box: m.clientWidth,
          scrolls: ['auto', 'scroll'].includes(s.overflowX),
          section: (m.closest('section') || {}).id};
});
"""
MATH_MIN = 0.8


def test_a_phone_fits_display_math(driver, server: str) -> None:
    """On a 390 px phone a display equation that fits its box at 80% of its size or more is
    shown that much smaller, whole (book/_static/tconv.js), and none is wider than that: the
    chapters break longer ones into lines. Before, four equations of chapters 1 and 3, 396 to
    441 px wide in a 358 px box, had their ends cut off behind a scroll a phone does not show,
    and two of chapters 2 and 6 (558 and 580 px) fitted only at 62-64% of their size."""
    problems, counted = [], 0
    with _device(driver, PHONE):
        for page in CHAPTERS:
            _open(driver, server, page)
            time.sleep(0.2)                               # tconv.js fits after MathJax's promise
            for eq in driver.execute_script(DISPLAY_MATH):
                counted += 1
                name = f"{page} #{eq['section']} equation {eq['i']}"
                assert eq["ref"], f"{page}: no inline math to compare the equations' size with"
                scale = eq["size"] / eq["ref"]
                if scale < MATH_MIN - 0.005:
                    problems.append(f"{name}: shown at {scale:.0%} of its size")
                if eq["width"] <= eq["box"]:
                    continue
                fits_at = eq["box"] * scale / eq["width"]         # of its size, to fit its box
                if fits_at >= MATH_MIN:
                    problems.append(f"{name}: {eq['width']} px wide in its {eq['box']} px box, "
                                    f"cut off, though it fits at {fits_at:.0%} of its size")
                else:
                    problems.append(f"{name}: {eq['width']} px wide in its {eq['box']} px box, "
                                    f"{'scrolling' if eq['scrolls'] else 'cut off'}: it fits "
                                    f"only at {fits_at:.0%} of its size; break it into lines "
                                    f"(an aligned environment) in the chapter")
            inner_width, scroll_width, _ = driver.execute_script(PAGE_WIDTH)
            if inner_width != PHONE[0] or scroll_width > PHONE[0]:
                problems.append(f"{page}: {scroll_width} px wide, the window {inner_width} px")
    assert counted > 5, f"the chapters have only {counted} display equations"
    assert not problems, (f"on a {PHONE[0]} px phone, display math cut off "
                          f"(book/_static/tconv.js):\n" + "\n".join(problems))


# every table of the page in its scrolling box: how wide it is against the box, and, scrolled
# to its end, where its first column's cells are against the box's left edge
TABLES = r"""
return [...document.querySelectorAll('main .bd-article table')].map((t, i) => {
  const box = t.closest('.pst-scrollable-table-container');
  if (!box) return {i, box: null};
  const left = box.getBoundingClientRect().left;
  box.scrollLeft = box.scrollWidth;
  const firsts = [...t.querySelectorAll('tr > :first-child')]
    .map(c => c.getBoundingClientRect().left - left);
  const result = {i, width: box.scrollWidth, box: box.clientWidth,
                  first: Math.max(...firsts.map(Math.abs)), rows: firsts.length};
  box.scrollLeft = 0;
  return result;
});
"""


@pytest.mark.parametrize("device", [PHONE, TABLET], ids=["phone-390", "tablet-768"])
def test_a_phone_keeps_tables_readable(driver, server: str,
                                       device: tuple[int, int, int]) -> None:
    """On a 390 px phone or a 768 px tablet a table fits its box, or scrolls in it with its
    first column (the rows' names) held at the box's left edge. Before, on the phone all four
    of the book's tables scrolled in a 358 px box with nothing held, the intro's two only 27 and
    46 px too wide; on the tablet chapter 4's table (899 px in 736)."""
    problems, counted = [], 0
    with _device(driver, device):
        for page in [p for p in PAGES if p.startswith("book/")]:
            _open(driver, server, page)
            for table in driver.execute_script(TABLES):
                counted += 1
                name = f"{page} table {table['i']}"
                if table["box"] is None:
                    problems.append(f"{name}: not in a scrolling box")
                elif table["width"] > table["box"] and table["first"] > 1:
                    problems.append(f"{name}: {table['width']} px wide in its {table['box']} px "
                                    f"box, and scrolled to its end its first column is "
                                    f"{table['first']:.0f} px off the box's left edge")
            inner_width, scroll_width, _ = driver.execute_script(PAGE_WIDTH)
            if inner_width != device[0] or scroll_width > device[0]:
                problems.append(f"{page}: {scroll_width} px wide, the window {inner_width} px")
    assert counted >= 3, f"the book has only {counted} tables: is TABLES out of date?"
    assert not problems, (f"at {device[0]} px, tables cut off "
                          f"(book/_static/tconv.css):\n" + "\n".join(problems))


# every control of the page a reader taps (the header's and the article's buttons, inputs,
# selects, <summary>s), <details> opened: its size, a radio button or checkbox with its <label>
# counted in (a tap on either works)
TARGETS = r"""
document.querySelectorAll('main details').forEach(d => { d.open = true; });
const out = [];
for (const el of document.querySelectorAll(
    '.bd-header :is(button, a.btn, input), main :is(button, input, select, summary, a.btn)')) {
  const s = getComputedStyle(el);
  let r = el.getBoundingClientRect();
  if (!r.width || !r.height || s.visibility === 'hidden' || s.display === 'none'
      || el.closest('[hidden], dialog:not([open])')) continue;
  if (el.type === 'hidden') continue;
  let width = r.width, height = r.height;
  const label = el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`);
  if (label && ['radio', 'checkbox'].includes(el.type)) {
    const l = label.getBoundingClientRect();
    width = Math.max(r.right, l.right) - Math.min(r.left, l.left);
    height = Math.max(r.bottom, l.bottom) - Math.min(r.top, l.top);
  }
  const name = el.getAttribute('aria-label') || el.getAttribute('title') || el.className
             || el.textContent.trim().slice(0, 30);
  out.push({name: `${el.tagName.toLowerCase()}${el.type ? ' ' + el.type : ''} ${name}`,
            width, height});
}
return out;
"""
TARGET_PX = 24                    # WCAG 2.2's minimum target size (2.5.8, level AA)


def test_a_phone_has_targets_a_finger_can_hit(driver, server: str) -> None:
    """On a 390 px phone every control of every book page (the header's buttons, chapter 2's
    animation player, the Full size buttons, hide-input toggles) is at least 24 x 24 CSS px,
    WCAG 2.2's minimum. Before, the animation's frame slider was 16 px high."""
    small, counted = [], 0
    with _device(driver, PHONE):
        for page in [p for p in PAGES if p.startswith("book/")]:
            _open(driver, server, page)
            for target in driver.execute_script(TARGETS):
                counted += 1
                if target["width"] < TARGET_PX or target["height"] < TARGET_PX:
                    small.append(f"{page}: {target['name'][:60]}: "
                                 f"{target['width']:.0f} x {target['height']:.0f} px")
    assert counted > 50, f"only {counted} controls on the book's pages: is TARGETS out of date?"
    assert not small, (f"on a {PHONE[0]} px phone, controls smaller than {TARGET_PX} x "
                       f"{TARGET_PX} px (book/_static/tconv.css):\n"
                       + "\n".join(sorted(set(small))))


# the code boxes and display equations of the page that are shown (<details> stay as they are):
# at most `arguments[0]` code boxes that scroll sideways, as many that fit, and as many of each
# of the equations
SCROLL_BOXES = r"""
const most = arguments[0], seen = {}, boxes = [];
for (const el of document.querySelectorAll(
    'main div.highlight > pre, main mjx-container[display="true"]')) {
  const r = el.getBoundingClientRect();
  if (!r.width || el.closest('details:not([open])')) continue;
  const scrolls = el.scrollWidth > el.clientWidth + 1;
  const kind = el.tagName === 'PRE' ? 'code box' : 'equation';
  seen[kind + scrolls] = (seen[kind + scrolls] || 0) + 1;
  if (seen[kind + scrolls] <= most) boxes.push({el, scrolls, kind});
}
return boxes;
"""


# a copy of the page's first display equation, 900 px wide, after it (no chapter has one wider
# than a phone shows it)
WIDE_EQUATION = r"""
const eq = document.querySelector('main mjx-container[display="true"]');
const wide = eq.cloneNode(true);
const pad = document.createElement('span');
pad.style.cssText = 'display: inline-block; width: 900px; height: 1px';
wide.appendChild(pad);
eq.after(wide);
"""


def _edges(box, end: bool = False) -> tuple[float, float, float]:
    """The grey level of a box's background 1 CSS px inside its left edge, in its middle and 2 px
    inside its right edge (the lightest pixel of each column's upper half: text is darker, and a
    scroll bar, which headless Chromium draws at the bottom, is left out), from a screenshot of
    the box (scrolled to its end if ``end``)."""
    import io

    from PIL import Image

    drv = box.parent
    drv.execute_script("arguments[0].scrollIntoView({block: 'center'});"
                       "arguments[0].scrollLeft = arguments[1] ? arguments[0].scrollWidth : 0;",
                       box, end)
    image = Image.open(io.BytesIO(box.screenshot_as_png)).convert("L")
    width = drv.execute_script("return arguments[0].clientWidth", box)
    scale = image.width / drv.execute_script(
        "return arguments[0].getBoundingClientRect().width", box)
    columns = [min(round(x * scale), image.width - 1) for x in (1, width / 2, width - 2)]
    rows = range(round(2 * scale), image.height // 2)
    return tuple(float(max(image.getpixel((x, y)) for y in rows)) for x in columns)


def test_a_phone_shows_where_a_box_scrolls(driver, server: str) -> None:
    """On a 390 px phone, whose scroll bars show only while one scrolls, a code box or display
    equation wider than it shows has a shadow on the side where more is hidden: at its right
    edge before it is scrolled, at its left edge scrolled to its end; one that fits has none.
    Before, a code line longer than the box's 60 columns (about a third of the chapters' lines)
    was cut at the box's edge with nothing to tell a cut line from a short one. No chapter's
    equation scrolls (test_a_phone_fits_display_math), so the first two pages get a copy of an
    equation made wider than the screen."""
    problems, counted = [], {}
    with _device(driver, PHONE):
        for page in CHAPTERS:
            _open(driver, server, page)
            time.sleep(0.2)                   # tconv.js shrinks equations after MathJax's promise
            if page in CHAPTERS[:2]:
                driver.execute_script(WIDE_EQUATION)
            for box in driver.execute_script(SCROLL_BOXES, 1):
                key = f"{box['kind']}s that {'scroll' if box['scrolls'] else 'fit'}"
                counted[key] = counted.get(key, 0) + 1
                name = f"{page} {box['kind']} {box['el'].text[:40]!r}"
                left, middle, right = _edges(box["el"])
                if not box["scrolls"]:
                    if max(abs(left - middle), abs(right - middle)) > 4:
                        problems.append(f"{name} fits, but has a shadow (grey {left:.0f} "
                                        f"{middle:.0f} {right:.0f})")
                    continue
                end_left, end_middle, end_right = _edges(box["el"], end=True)
                if middle - right < 12 or abs(left - middle) > 4:
                    problems.append(f"{name} scrolls, but its right edge has no shadow (grey "
                                    f"{left:.0f} {middle:.0f} {right:.0f})")
                if end_middle - end_left < 12 or abs(end_right - end_middle) > 4:
                    problems.append(f"{name}, scrolled to its end, has no shadow on its left "
                                    f"edge (grey {end_left:.0f} {end_middle:.0f} {end_right:.0f})")
    assert len(counted) == 4 and min(counted.values()) >= 2, f"boxes checked: {counted}"
    assert not problems, (f"on a {PHONE[0]} px phone, boxes that do not show where they scroll "
                          f"(book/_static/tconv.css):\n" + "\n".join(problems))
