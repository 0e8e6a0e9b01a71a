/* The tconv book's own script (listed in _config.yml, sphinx.config.html_js_files).

   A figure shown too small to read opens at its full size on a tap. The chapters' figures are
   drawn 470 to 900 px wide with 10-point text (about 14 px of the image), so a 390 px phone,
   which shows them 368 to 390 px wide, shrinks that text to 5.7 to 11.5 px. A figure shown at less
   than SMALL of its own width gets a "Full size" button under it (only then: on a tablet or a
   desktop nothing changes), and a tap on the figure or the button shows it in a full-screen
   view at one CSS pixel per image pixel, panned with a finger; its Close button, Escape or the
   phone's Back closes it. Every figure shown smaller than its own size opens the same way on a
   click (with a zoom-in cursor). Animations' frames are left alone: their player is their
   control. tests/test_book_browser.py::test_a_phone_shows_figures_full_size_on_a_tap measures
   this. By keyboard: the button is a tab stop (Enter opens), the view opens with its Close
   button focused, Tab moves to the figure's pane, which the arrow keys pan (it is a tab stop of
   its own: a scroll box that only a mouse or a finger could move kept a keyboard reader to the
   figure's top left corner), and Escape closes it, focus going back to the button.
   tests/test_book_a11y.py::test_full_size_view_works_by_keyboard checks this. */
(() => {
  "use strict";
  const SMALL = 0.65;              // below this a figure's 10-pt text is under 9 CSS px
  const FIGURES = "main .bd-article div.cell_output figure img, main .bd-article div.output img";
  const ICON = '<svg aria-hidden="true" viewBox="0 0 16 16" width="16" height="16">'
    + '<path fill="none" stroke="currentColor" stroke-width="1.6" d="M9.5 1.5h5v5M14.5 1.5 '
    + '9 7M6.5 14.5h-5v-5M1.5 14.5 7 9"/></svg>';
  let view = null;                 // the full-screen <dialog>, made on the first open
  let at = [0, 0];                 // where the page was scrolled when it opened

  const figures = () => [...document.querySelectorAll(FIGURES)]
    .filter((img) => !img.closest(".animation"));

  function name(img) {
    const number = img.closest("figure")?.querySelector(".caption-number");
    return number ? number.textContent.trim().replace(/\s+/g, " ") : "the figure";
  }

  function makeView() {
    const dialog = document.createElement("dialog");
    dialog.className = "tconv-zoom";
    dialog.setAttribute("aria-label", "Figure at full size");
    dialog.innerHTML = '<button type="button" class="tconv-zoom-close">Close</button>'
      + '<div class="tconv-zoom-pane" tabindex="0"><img alt=""></div>';
    document.body.append(dialog);
    dialog.querySelector(".tconv-zoom-close").addEventListener("click", close);
    dialog.addEventListener("cancel", (event) => { event.preventDefault(); close(); });
    // Escape closes it whatever has the focus: Sphinx's doctools.js takes Escape on the page
    // (prevents its default, so no cancel) unless a button or a field has the focus, which
    // kept the view open with its pane focused
    dialog.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.preventDefault();
      event.stopPropagation();
      close();
    });
    window.addEventListener("popstate", () => { if (dialog.open) dialog.close(); });
    // the page stays where it was (focus going back to a figure's link would scroll it)
    dialog.addEventListener("close", () => window.scrollTo(...at));
    return dialog;
  }

  function open(img) {
    view = view || makeView();
    at = [window.scrollX, window.scrollY];
    const big = view.querySelector(".tconv-zoom-pane img");
    big.src = img.currentSrc || img.src;
    big.alt = img.alt;
    big.style.width = `${img.naturalWidth}px`;       // one CSS pixel per image pixel
    view.setAttribute("aria-label", `${name(img)} at full size`);
    view.showModal();
    view.querySelector(".tconv-zoom-pane").scrollTo(0, 0);
    history.pushState({tconvZoom: true}, "");        // Back closes the view, not the page
  }

  function close() {
    if (!view || !view.open) return;
    if (history.state && history.state.tconvZoom) history.back();   // popstate closes it
    else view.close();
  }

  // whether an image is shown smaller than its own size, and below SMALL of it
  function measure(img) {
    const shown = img.getBoundingClientRect().width;
    if (!img.naturalWidth || !shown) return;
    const scale = shown / img.naturalWidth;
    img.classList.toggle("tconv-zoomable", scale < 0.99);
    img.closest("figure")?.classList.toggle("tconv-small", scale < SMALL);
  }

  function setUp(img) {
    img.addEventListener("click", (event) => {
      if (!img.classList.contains("tconv-zoomable")) return;
      event.preventDefault();                          // a figure linked to its image file
      open(img);
    });
    const figure = img.closest("figure");
    if (figure && !figure.querySelector(".tconv-zoom-open")) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "tconv-zoom-open";
      button.innerHTML = `${ICON}<span>Full size</span>`;
      button.setAttribute("aria-label", `Show ${name(img)} at full size`);
      button.addEventListener("click", () => open(img));
      const caption = figure.querySelector("figcaption");
      figure.insertBefore(button, caption);
    }
    if (img.complete) measure(img);
    else img.addEventListener("load", () => measure(img), {once: true});
  }

  function start() {
    const imgs = figures();
    imgs.forEach(setUp);
    let pending = 0;
    window.addEventListener("resize", () => {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(() => imgs.forEach(measure));
    });
    // a figure in a closed <details> has no width until it is opened
    document.addEventListener("toggle", () => imgs.forEach(measure), true);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

/* A display equation a little wider than its box is shown smaller until it fits: on a 390 px
   phone four of the chapters' equations (in 1.1, 3.1, 3.2 and 3.3) were 396 to 441 px wide in a
   358 px box, their ends cut off behind a sideways scroll a phone does not show. One that fits
   at MATH_MIN of its size or more is shrunk to fit (never below MATH_MIN: MathJax sets it at
   about 18 px on the 16 px text, so at least 14 px); a wider one keeps its size and scrolls in
   its box, as before. Measured again when the window's width changes.
   tests/test_book_browser.py::test_a_phone_fits_display_math measures this.
   An equation that still scrolls is a tab stop, and one that fits is not, so that a keyboard
   can scroll it, as the theme does for code boxes and tables. MathJax's menu used to make every
   formula a tab stop (843 of the book's 1816); _config.yml turns that off, which left the
   equations that scroll on a phone with no keyboard access (axe's scrollable-region-focusable,
   serious). tests/test_book_a11y.py::test_formulas_are_not_tab_stops_and_keep_their_mathml
   checks this. */
(() => {
  "use strict";
  const MATH_MIN = 0.8;
  const DISPLAY = "main mjx-container[display=\"true\"]";

  function fit() {
    for (const math of document.querySelectorAll(DISPLAY)) {
      if (!("tconvSize" in math.dataset)) math.dataset.tconvSize = math.style.fontSize;
      math.style.fontSize = math.dataset.tconvSize;                  // MathJax's own size
      const box = math.clientWidth;
      if (!box || math.scrollWidth <= box) continue;
      const size = parseFloat(getComputedStyle(math).fontSize);
      let ratio = box / math.scrollWidth;
      if (ratio < MATH_MIN) continue;
      for (let tries = 0; tries < 4 && math.scrollWidth > box && ratio >= MATH_MIN; tries++) {
        math.style.fontSize = `${Math.floor(size * ratio * 100) / 100}px`;
        ratio *= 0.99;                                               // rounding in the layout
      }
      if (math.scrollWidth > box) math.style.fontSize = math.dataset.tconvSize;
    }
    for (const math of document.querySelectorAll(DISPLAY)) {
      if (math.scrollWidth > math.clientWidth) math.tabIndex = 0;
      else math.removeAttribute("tabindex");
    }
  }

  function start() {
    const typeset = window.MathJax && MathJax.startup && MathJax.startup.promise;
    if (!typeset) return;
    typeset.then(() => {
      fit();
      let pending = 0, width = window.innerWidth;
      window.addEventListener("resize", () => {
        if (window.innerWidth === width) return;                     // a phone's toolbar
        width = window.innerWidth;
        cancelAnimationFrame(pending);
        pending = requestAnimationFrame(fit);
      });
      document.addEventListener("toggle", fit, true);
    });
  }

  if (document.readyState === "complete") start();
  else window.addEventListener("load", start);
})();
