"""The built book for a reader who relies on accessibility: a screen reader, a keyboard only, low
vision. Every page is audited with axe-core (the ``axe-core-python`` package's bundled
``axe.min.js``, axe-core 4.4.3) in the project's headless Chromium: a serious or critical
violation fails, listing the page, axe's rule id, the element's selector and axe's help text.
Pages are audited at desktop width (1280 px) with every rule, and at phone width (390 px), where
code, tables and equations scroll sideways, with the rules about scroll boxes, names of
controls and contrast. By keyboard alone: focus is visible on the tab stops of a page's header,
chapter 2's animation player is named and works from the keyboard, and a figure's full-size
view (``book/_static/tconv.js``) opens, pans and closes without a mouse.

One browser session serves every page (2.5 minutes on this 2-core machine at a load of 9; the
chapters with most code, 5 to 7, take most of it).
The Chromium set-up is ``tests/test_book_browser.py``'s (its ``server`` and ``driver``
fixtures); without Chromium or the built book the tests skip, under ``CI=true`` they fail.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from skips import skip_or_fail
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


def _axe_script() -> str:
    try:
        from axe_core_python.base import AXE_FILE_PATH
    except ImportError:
        skip_or_fail("the accessibility audit needs axe-core-python (pip install -e '.[test]')")
    return Path(AXE_FILE_PATH).read_text(encoding="utf-8")


RUN_AXE = """
const [rules, context, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const options = {resultTypes: ['violations']};
if (rules) options.runOnly = {type: 'rule', values: rules};
axe.run(context, options).then(r => done(r.violations), e => done('axe failed: ' + e));
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
    """axe-core's serious and critical violations, every page, desktop and phone width."""
    problems, counted = [], 0
    for page in PAGES:
        _open(axe_driver, server, page, DESKTOP)
        problems += _failures(page, DESKTOP[0], _audit(axe_driver, None))
        # the same page narrowed to a phone (no reload: MathJax is the slow part of a load);
        # the book's script re-measures its figures on the resize, in an animation frame
        axe_driver.set_window_size(*PHONE)
        axe_driver.execute_async_script(
            "const done = arguments[0]; requestAnimationFrame(() => setTimeout(done, 100));")
        assert axe_driver.execute_script("return window.innerWidth") == PHONE[0]
        problems += _failures(page, PHONE[0], _audit(axe_driver, PHONE_RULES))
        problems += _failures(page, PHONE[0], _audit(axe_driver, ["color-contrast"],
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


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_keyboard_focus_is_visible(axe_driver, server: str, size) -> None:  # noqa: F811
    """The first ten tab stops of a chapter (skip link, header buttons, sidebar, the first
    code box) each draw a focus ring: an outline, or the theme's ring shadow."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    _open(axe_driver, server, "book/02_three_views.html", size)
    unseen = []
    for _ in range(10):
        ActionChains(axe_driver).send_keys(Keys.TAB).perform()
        style = _focus_style(axe_driver)
        if not _shows_focus(style):
            unseen.append(style["what"])
    assert not unseen, f"at {size[0]} px these tab stops show no focus: {unseen}"


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
