"""The built book for a reader who relies on accessibility: a screen reader, a keyboard only, low
vision, dark mode. Every page is audited with axe-core in the project's headless Chromium: a
serious or critical violation fails, listing the page, axe's rule id, the element's selector
and axe's help text. The audit uses axe-core 4.10.3 (it has WCAG 2.2's rules, target-size among
them), fetched once from the npm registry with ``npm pack`` (as ``scripts/build_book.sh``
fetches MathJax) into ``test-artifacts/``; without npm or the registry it falls back, outside
CI, to axe-core 4.4.3 bundled with the ``axe-core-python`` package, with a warning. Pages are
audited at desktop width (1280 px) with every rule, and at phone width (390 px), where code,
tables and equations scroll sideways, with the rules about scroll boxes, names of controls and
contrast; contrast again in dark mode (pydata-sphinx-theme's ``data-theme="dark"``) at both
widths. The scroll shadows of phone-width boxes show in both modes. Formulas are not tab stops
(MathJax's menu made every one of them one: 843 of the book's 1816) and still carry the
MathML a screen reader reads. By keyboard alone: focus is visible on the tab stops of a page's
header, chapter 2's animation player is named and works from the keyboard, and a figure's
full-size view (``book/_static/tconv.js``) opens, pans and closes without a mouse.

One browser session serves every page (2.5 minutes on this 2-core machine at a load of 9; the
chapters with most code, 5 to 7, take most of it).
The Chromium set-up is ``tests/test_book_browser.py``'s (its ``server`` and ``driver``
fixtures); without Chromium or the built book the tests skip, under ``CI=true`` they fail.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import pytest
from skips import in_ci, skip_or_fail
from test_book_browser import PAGES, WAIT_FOR_MATHJAX, driver, server  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("book-a11y")]

ROOT = Path(__file__).resolve().parents[1]
FAILING = ("serious", "critical")
DESKTOP, PHONE = (1280, 1600), (390, 844)
# At phone width only the rules a narrow window changes: scroll boxes appear (code, tables,
# equations), the header's controls and the figure buttons change, text reflows over new
# backgrounds.
PHONE_RULES = ["scrollable-region-focusable", "button-name", "link-name", "label",
               "nested-interactive", "image-alt", "aria-required-children"]
# and color-contrast, less code boxes and display equations: their text's contrast is audited
# at desktop width, and on a phone axe cannot tell it (the scroll shadows of tconv.css are
# background gradients: it reports "incomplete", never a violation), while their ~3000
# highlighted tokens a page took 40% of the audit's time.
PHONE_CONTRAST_LEAVES_OUT = ("div.highlight", "mjx-container")

# Violations that come from the upstream theme or tools and cannot be fixed cleanly here, by
# (rule id, CSS selector axe reports). Each needs its reason. None is serious or critical today:
# the only finding left is axe's moderate `region` rule on sphinx-book-theme's sidebar brand
# (`.sidebar-primary-items__start > .sidebar-primary-item:nth-child(1)`, the book's title link
# placed in a <div> outside any landmark by the theme's template), which this test does not
# fail on (moderate), so it needs no entry. Add one here only with the reason it cannot be
# fixed in book/_static or book/_ext.
EXCLUDED: dict[tuple[str, str], str] = {}


AXE_VERSION = "4.10.3"
AXE_CACHE = ROOT / "test-artifacts" / f"axe-core-{AXE_VERSION}" / "axe.min.js"


def _fetch_axe() -> str:
    """axe-core ``AXE_VERSION``'s ``axe.min.js`` from the npm registry (``npm pack``), kept in
    ``AXE_CACHE``; "" where npm or the registry cannot be reached."""
    if not AXE_CACHE.is_file():
        npm = shutil.which("npm")
        if not npm:
            return ""
        try:
            with tempfile.TemporaryDirectory() as tmp:
                subprocess.run([npm, "pack", "--silent", f"axe-core@{AXE_VERSION}"], cwd=tmp,
                               check=True, capture_output=True, timeout=180)
                with tarfile.open(next(Path(tmp).glob("axe-core-*.tgz"))) as tar:
                    script = tar.extractfile("package/axe.min.js").read()
        except (OSError, subprocess.SubprocessError, StopIteration, tarfile.TarError, KeyError,
                AttributeError):
            return ""
        AXE_CACHE.parent.mkdir(parents=True, exist_ok=True)
        AXE_CACHE.write_bytes(script)
    script = AXE_CACHE.read_text(encoding="utf-8")
    assert f"axe v{AXE_VERSION}" in script[:200], f"{AXE_CACHE} is not axe-core {AXE_VERSION}"
    return script


@functools.cache
def _axe_script() -> str:
    script = _fetch_axe()
    if script:
        return script
    if in_ci():
        pytest.fail(f"must work in CI: axe-core {AXE_VERSION} from the npm registry (npm pack)")
    try:
        from axe_core_python.base import AXE_FILE_PATH
    except ImportError:
        skip_or_fail("the accessibility audit needs npm (axe-core from the npm registry) or "
                     "axe-core-python (pip install -e '.[test]')")
    warnings.warn(f"axe-core {AXE_VERSION} could not be fetched with npm: auditing with the "
                  "axe-core 4.4.3 bundled with axe-core-python, which lacks WCAG 2.2's rules",
                  stacklevel=2)
    return Path(AXE_FILE_PATH).read_text(encoding="utf-8")


def _set_mode(drv, mode: str) -> None:
    """pydata-sphinx-theme's colour mode, as its switch sets it (``data-mode`` is the choice,
    ``data-theme`` the mode shown, which the theme's CSS keys on), for this page load."""
    drv.execute_script("document.documentElement.dataset.mode = arguments[0];"
                       "document.documentElement.dataset.theme = arguments[0];", mode)
    assert drv.execute_script(
        "return getComputedStyle(document.documentElement).colorScheme") == mode
    # the theme fades some colours (the search field's) between the modes: audit the end state,
    # not a mix of the two (axe read 3.3:1 on references.html half-way through the fade)
    assert drv.execute_async_script("""
        const done = arguments[0], start = performance.now();
        (function poll() {
          const running = document.getAnimations().filter(a => a.playState === 'running');
          if (!running.length) done(true);
          else if (performance.now() - start > 3000) done(false);
          else setTimeout(poll, 50);
        })();"""), "colour transitions still running 3 s after switching the mode"


RUN_AXE = """
const [rules, context, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const options = {resultTypes: ['violations']};
if (rules) options.runOnly = {type: 'rule', values: rules};
axe.run(context, options).then(r => done(r.violations), e => done('axe failed: ' + e));
"""


# pydata-sphinx-theme makes every box that scrolls (a code box, an output, a table) a tab stop,
# and every other one not, at load and again 300 ms after a resize, and the book's script does
# the same for display equations (tconv.js): wait (at most 3 s) until both have, so that the
# audit at phone width sees the page a phone shows. (axe 4.10 counts a box still at tabindex -1
# from the desktop width against scrollable-region-focusable; 4.4.3 did not.)
THEME_TAB_STOPS = """
const done = arguments[arguments.length - 1], start = performance.now();
const boxes = 'pre, .nboutput > .output_area, .cell_output > .output, .jp-RenderedHTMLCommon, '
    + '.pst-scrollable-table-container, main mjx-container[display="true"]';
const settled = () => [...document.querySelectorAll(boxes)].every(
    e => (e.scrollWidth > e.clientWidth || e.scrollHeight > e.clientHeight) === (e.tabIndex >= 0));
(function poll() {
  if (settled()) { setTimeout(() => done(true), 50); }
  else if (performance.now() - start > 3000) { done(false); }
  else { setTimeout(poll, 50); }
})();
"""


def _open(drv, base: str, page: str, size: tuple[int, int]) -> None:
    drv.set_window_size(*size)
    drv.get(base + page)
    drv.execute_async_script(WAIT_FOR_MATHJAX)


def _audit(drv, rules: list[str] | None, within: str | None = None,
           leave_out: tuple[str, ...] = ()) -> list[dict]:
    """axe's violations on the page (or in the element ``within`` selects, less the elements
    ``leave_out`` selects), all rules or ``rules``."""
    if not drv.execute_script("return typeof axe !== 'undefined'"):
        drv.execute_script(_axe_script())
    context = {"include": [[within or "html"]], "exclude": [[sel] for sel in leave_out]}
    found = drv.execute_async_script(RUN_AXE, rules, context)
    assert not isinstance(found, str), found
    return found


def _failures(page: str, width: int, violations: list[dict]) -> list[str]:
    lines = []
    for v in violations:
        if v["impact"] not in FAILING:
            continue
        for node in v["nodes"]:
            target = " ".join(node["target"] if isinstance(node["target"], list)
                              else [str(node["target"])])
            if (v["id"], target) in EXCLUDED:
                continue
            why = " ".join((node.get("failureSummary") or "").split())
            lines.append(f"{page} at {width} px: {v['id']} ({v['impact']}) on {target}: "
                         f"{v['help']} ({v['helpUrl']}); axe: {why[:240]}")
    return lines


@pytest.fixture(scope="module")
def axe_driver(driver):  # noqa: F811 (the browser test's fixture, imported above)
    yield driver
    driver.set_window_size(*DESKTOP)


def test_every_page_passes_axe(axe_driver, server: str) -> None:  # noqa: F811
    """axe-core's serious and critical violations, every page, desktop and phone width, and
    contrast in dark mode at both."""
    problems, counted = [], 0
    for page in PAGES:
        _open(axe_driver, server, page, DESKTOP)
        problems += _failures(page, DESKTOP[0], _audit(axe_driver, None))
        _set_mode(axe_driver, "dark")
        problems += _failures(page + " (dark mode)", DESKTOP[0],
                              _audit(axe_driver, ["color-contrast"]))
        _set_mode(axe_driver, "light")
        # the same page narrowed to a phone (no reload: MathJax is the slow part of a load);
        # the book's script re-measures its figures on the resize, in an animation frame, and
        # the theme makes the boxes that now scroll tab stops 300 ms after it (debounced)
        axe_driver.set_window_size(*PHONE)
        axe_driver.execute_async_script(
            "const done = arguments[0]; requestAnimationFrame(() => setTimeout(done, 100));")
        assert axe_driver.execute_script("return window.innerWidth") == PHONE[0]
        assert axe_driver.execute_async_script(THEME_TAB_STOPS), \
            f"{page}: the theme did not make the boxes that scroll at {PHONE[0]} px tab stops"
        problems += _failures(page, PHONE[0], _audit(axe_driver, PHONE_RULES))
        problems += _failures(page, PHONE[0], _audit(axe_driver, ["color-contrast"],
                                                     leave_out=PHONE_CONTRAST_LEAVES_OUT))
        _set_mode(axe_driver, "dark")
        problems += _failures(page + " (dark mode)", PHONE[0],
                              _audit(axe_driver, ["color-contrast"],
                                     leave_out=PHONE_CONTRAST_LEAVES_OUT))
        counted += 1
    assert counted == len(PAGES)
    assert not problems, (f"{len(problems)} serious or critical accessibility violations "
                          "(axe-core):\n" + "\n".join(problems))


def _tab_to(drv, css: str, limit: int = 400) -> dict:
    """Press Tab until the element matching ``css`` has the focus; its focus style."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    for _ in range(limit):
        ActionChains(drv).send_keys(Keys.TAB).perform()
        if drv.execute_script("return document.activeElement.matches(arguments[0])", css):
            return _focus_style(drv)
    pytest.fail(f"{css} never got the keyboard focus in {limit} presses of Tab")


def _focus_style(drv) -> dict:
    return drv.execute_script("""
        const e = document.activeElement, s = getComputedStyle(e);
        return {what: e.outerHTML.slice(0, 120), visible: e.matches(':focus-visible'),
                outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0,
                ring: s.boxShadow !== 'none'};""")


def _shows_focus(style: dict) -> bool:
    return style["visible"] and (style["outline"] or style["ring"])


@pytest.mark.parametrize(("size", "mode"), [(DESKTOP, "light"), (PHONE, "light"),
                                            (DESKTOP, "dark"), (PHONE, "dark")],
                         ids=["desktop", "phone", "desktop-dark", "phone-dark"])
def test_keyboard_focus_is_visible(axe_driver, server: str, size, mode: str) -> None:  # noqa: F811
    """The first ten tab stops of a chapter (skip link, header buttons, sidebar, the first
    code box) each draw a focus ring: an outline, or the theme's ring shadow; in dark mode too."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    _open(axe_driver, server, "book/02_three_views.html", size)
    _set_mode(axe_driver, mode)
    unseen = []
    for _ in range(10):
        ActionChains(axe_driver).send_keys(Keys.TAB).perform()
        style = _focus_style(axe_driver)
        if not _shows_focus(style):
            unseen.append(style["what"])
    assert not unseen, f"at {size[0]} px, {mode} mode, these tab stops show no focus: {unseen}"


def test_animation_player_works_by_keyboard(axe_driver, server: str) -> None:  # noqa: F811
    """Chapter 2's animation: its frame slider is named, reached by Tab, moved by the arrow
    keys (the frame shown changes), and its buttons are reached and pressed by keyboard."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    drv = axe_driver
    _open(drv, server, "book/02_three_views.html", DESKTOP)
    slider = drv.find_element("css selector", ".animation input.anim-slider")
    assert (slider.get_attribute("aria-label") or "").strip(), \
        "the animation's frame slider has no accessible name"
    drv.execute_script("arguments[0].scrollIntoView({block: 'center'});", slider)
    # start tabbing just before the player: the figure above it
    drv.execute_script("""
        const p = arguments[0].closest('.animation'), before = document.createElement('span');
        before.tabIndex = -1; p.before(before); before.focus();""", slider)
    assert _shows_focus(_tab_to(drv, ".animation input.anim-slider", limit=3))
    frame = "return document.querySelector('.animation img').src"
    first = drv.execute_script(frame)
    ActionChains(drv).send_keys(Keys.ARROW_RIGHT).perform()
    assert slider.get_attribute("value") == "1"
    assert drv.execute_script(frame) != first, "the arrow key moved the slider, not the frame"
    assert _shows_focus(_tab_to(drv, ".animation button[aria-label='Last frame']", limit=10))
    ActionChains(drv).send_keys(Keys.ENTER).perform()
    assert slider.get_attribute("value") == slider.get_attribute("max")


def test_full_size_view_works_by_keyboard(axe_driver, server: str) -> None:  # noqa: F811
    """On a phone a small figure's "Full size" button is reached by Tab and shows focus; Enter
    opens the view with its Close button focused; Tab reaches the figure's pane, which shows
    focus and pans with the arrow keys; Escape closes the view, focus back on the button; the
    open view passes axe."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    drv = axe_driver
    _open(drv, server, "book/02_three_views.html", PHONE)
    button = drv.find_element("css selector", "figure.tconv-small button.tconv-zoom-open")
    drv.execute_script("""
        const f = arguments[0].closest('figure'), before = document.createElement('span');
        before.tabIndex = -1; f.before(before); before.focus();""", button)
    assert _shows_focus(_tab_to(drv, "figure.tconv-small button.tconv-zoom-open", limit=5))
    ActionChains(drv).send_keys(Keys.ENTER).perform()
    time.sleep(0.3)
    assert drv.execute_script("return document.querySelector('dialog.tconv-zoom').open")
    assert drv.execute_script(
        "return document.activeElement.matches('dialog.tconv-zoom .tconv-zoom-close')")
    # the view alone: the page behind a modal dialog is inert, and dimmed by its backdrop on
    # purpose (axe 4.4 would count the dimmed text's contrast)
    problems = _failures("book/02_three_views.html (full-size view open)", PHONE[0],
                         _audit(drv, None, within="dialog.tconv-zoom"))
    assert not problems, "\n".join(problems)
    style = _tab_to(drv, "dialog.tconv-zoom .tconv-zoom-pane", limit=1)
    assert _shows_focus(style), f"the figure's pane shows no focus: {style}"
    # the ring is drawn inside the pane, which fills a view that clips what is outside it
    assert drv.execute_script("""
        const s = getComputedStyle(document.activeElement);
        return parseFloat(s.outlineOffset) + parseFloat(s.outlineWidth) <= 0;""")
    pane = ("const p = document.querySelector('.tconv-zoom-pane'); "
            "return [p.scrollLeft, p.scrollTop];")
    assert drv.execute_script(pane) == [0, 0]
    ActionChains(drv).send_keys(Keys.ARROW_RIGHT * 4 + Keys.ARROW_DOWN * 4).perform()
    time.sleep(0.3)
    left, top = drv.execute_script(pane)
    assert left > 0 or top > 0, "the arrow keys did not pan the full-size figure"
    ActionChains(drv).send_keys(Keys.ESCAPE).perform()
    time.sleep(0.5)
    assert not drv.execute_script("return document.querySelector('dialog.tconv-zoom').open")
    assert drv.execute_script("return document.activeElement === arguments[0]", button), \
        "focus did not go back to the Full size button"


def _luminance(rgb: tuple[float, ...]) -> float:
    """WCAG's relative luminance of an sRGB colour (0-255 channels)."""
    lin = [(c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4)
           for c in rgb[:3]]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _colours(css: str) -> list[tuple[float, ...]]:
    """The colours of a computed CSS value, in order, as (r, g, b, alpha)."""
    found = []
    for m in re.finditer(r"rgba?\(([^)]*)\)", css):
        parts = [float(v) for v in m.group(1).replace("/", ",").replace(" ", ",").split(",") if v]
        found.append(tuple(parts[:3]) + (parts[3] if len(parts) > 3 else 1.0,))
    return found


# the page's first code box and first display equation (chapter 2 has both, at phone width)
SHADOWED = {"code box": ".bd-article div.highlight > pre",
            "equation": ".bd-article mjx-container[display='true']"}


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_scroll_shadows_show_in_both_modes(axe_driver, server: str, mode: str) -> None:  # noqa: F811
    """Below 992 px a box that scrolls sideways shows a shadow on the side where more is hidden
    (tconv.css, "scroll shadows"). The shadow's darkest edge, laid over the box's background,
    must stand out from it: at least 1.5:1. A black shadow did in light mode (1.68:1) but not
    in dark mode (1.16:1 on a code box, 1.03:1 on an equation: next to no shadow)."""
    _open(axe_driver, server, "book/02_three_views.html", PHONE)
    _set_mode(axe_driver, mode)
    faint = []
    for what, css in SHADOWED.items():
        image = axe_driver.execute_script(
            "const e = document.querySelector(arguments[0]);"
            "return e && getComputedStyle(e).backgroundImage;", css)
        assert image and image.count("linear-gradient") == 4, f"{what}: no scroll shadows: {image}"
        colours = _colours(image)
        # four gradients of two colours: the two covers (the box's own background, then
        # transparent), then the two shadows (the shadow's colour, then transparent)
        box, shadow = colours[0], colours[4]
        alpha = shadow[3]
        edge = tuple(alpha * s + (1 - alpha) * b for s, b in zip(shadow[:3], box[:3], strict=True))
        ratio = _contrast(edge, box)
        if ratio < 1.5:
            faint.append(f"{what}: shadow {shadow} on {box}: {ratio:.2f}:1")
    assert not faint, f"{mode} mode: scroll shadows too faint to see: {faint}"


FORMULA_STOPS = """
const f = [...document.querySelectorAll('main mjx-container')];
const scrolls = e => e.getAttribute('display') === 'true' && e.scrollWidth > e.clientWidth;
return {formulas: f.length,
        needless_stops: f.filter(e => e.tabIndex >= 0 && !scrolls(e)).length,
        scrolling: f.filter(scrolls).length,
        scrolling_stops: f.filter(e => scrolls(e) && e.tabIndex >= 0).length,
        mathml: f.filter(e => e.querySelector('mjx-assistive-mml > math')).length};"""


@pytest.mark.parametrize(("page", "size"), [("book/05_fast.html", DESKTOP),
                                            ("book/03_gradient.html", PHONE)],
                         ids=["ch5-desktop", "ch3-phone"])
def test_formulas_are_not_tab_stops_and_keep_their_mathml(axe_driver, server: str,  # noqa: F811
                                                          page: str, size) -> None:
    """MathJax's menu made every formula a tab stop (chapter 5: 156 of 304), so a keyboard
    user pressed Tab through every inline $k$ and $s$ to reach the next link. _config.yml takes
    them out of the Tab order (MathJax's menu setting inTabOrder: false); only a display
    equation too wide for its box, which scrolls, is a tab stop, so that a keyboard can scroll it
    (tconv.js; on a phone, chapter 3 has such equations). What assistive technology uses stays:
    each formula carries its hidden MathML (mjx-assistive-mml), which a screen reader reads and
    lets one explore in its own reading mode, and a right click still opens MathJax's menu
    (Show Math As, speech and zoom settings)."""
    _open(axe_driver, server, page, size)
    assert axe_driver.execute_async_script(THEME_TAB_STOPS), "tab stops never settled"
    found = axe_driver.execute_script(FORMULA_STOPS)
    assert found["formulas"] > 50, f"{page}: formulas were not typeset: {found}"
    assert found["needless_stops"] == 0, f"{page}: formulas that are tab stops: {found}"
    assert found["scrolling_stops"] == found["scrolling"], \
        f"{page}: equations that scroll but are no tab stop: {found}"
    if size == PHONE:
        assert found["scrolling"], f"{page}: no equation scrolls at {size[0]} px: {found}"
    assert found["mathml"] == found["formulas"], f"{page}: formulas without MathML: {found}"
    opened = axe_driver.execute_script("""
        const e = document.querySelector('mjx-container'), r = e.getBoundingClientRect();
        e.dispatchEvent(new MouseEvent('contextmenu', {bubbles: true, cancelable: true,
            clientX: r.left + 2, clientY: r.top + 2, button: 2}));
        const menu = document.querySelector('.CtxtMenu_Menu');
        const shown = !!menu && getComputedStyle(menu).display !== 'none';
        document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}));
        return shown;""")
    assert opened, "a right click on a formula no longer opens MathJax's menu"
