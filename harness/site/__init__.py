"""How results are shown: publish.py (RESULTS.md tables and SVG plot files), build.py (the static HTML site),
html.py and svg.py (its page parts and inline charts), eval_page.py and claims_page.py (those pages), and
browser.py (a headless Chromium check of the built site)."""
