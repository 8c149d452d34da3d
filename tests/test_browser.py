"""A derivation and a report, rendered by a real headless browser with KaTeX: every display equation
derivcheck writes as HTML must typeset, with no KaTeX error.

Needs Debian's ``chromium`` (``apt-get install chromium``) and npm (KaTeX comes from the npm
registry); where either is missing the test is skipped and says why. The notebook check
(tests/test_notebook.py) runs everywhere.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import derivcheck as dc

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NPM = shutil.which("npm")
# What the browser is started with: headless, no network of its own, a fresh profile.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000", "--dump-dom")

pytestmark = pytest.mark.skipif(CHROMIUM is None or NPM is None,
                                reason="needs chromium (apt-get install chromium) and npm for KaTeX")


@pytest.fixture(scope="module")
def katex(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("katex")
    done = subprocess.run([NPM, "install", "--prefix", str(prefix), "katex@0.16", "--no-audit", "--no-fund"],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"KaTeX could not be installed from the npm registry: {done.stderr.strip()[-200:]}")
    return prefix / "node_modules" / "katex" / "dist"


def _page(body: str, katex: Path) -> str:
    # KaTeX inlined: a file:// page may not load scripts from other files.
    css = (katex / "katex.min.css").read_text()
    js = (katex / "katex.min.js").read_text() + "\n" + (katex / "contrib" / "auto-render.min.js").read_text()
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>{css}</style>
<script>{js}</script></head><body>{body}
<script>renderMathInElement(document.body, {{delimiters: [{{left: "$$", right: "$$", display: true}}],
  throwOnError: false}}); document.body.setAttribute("data-rendered", "yes");</script>
</body></html>"""


def _rendered_dom(body: str, katex: Path, tmp_path: Path) -> str:
    page = tmp_path / "page.html"
    page.write_text(_page(body, katex))
    profile = tmp_path / "profile"
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    body = done.stdout.split("<body", 1)[1]
    return re.sub(r"<script>.*?</script>", "", body, flags=re.S)  # the page's content, without KaTeX's own code


def test_a_derivation_and_a_report_typeset_in_a_real_browser(katex: Path, tmp_path: Path) -> None:
    derivation = dc.derive("dense")._repr_html_()
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2))
    report = dc.check_gradient(lambda w: float(np.sum(w**3)), lambda w: 1.5 * w**2, w)._repr_html_()
    equations = derivation.count("$$") // 2
    assert equations >= 3  # the forward, an index form and a matrix form at least

    dom = _rendered_dom(derivation + report, katex, tmp_path)
    assert 'data-rendered="yes"' in dom  # the scripts ran
    assert len(re.findall(r'class="katex-display"', dom)) == equations  # every display equation typeset
    assert 'class="katex-error"' not in dom and "$$" not in dom
    assert "FAIL" in dom and "<table" in dom  # the report's table is on the page too


def test_a_broken_equation_would_be_seen(katex: Path, tmp_path: Path) -> None:
    # The check can fail: LaTeX KaTeX cannot parse is left as its raw text, never typeset.
    dom = _rendered_dom("<p>$$\\frac{1}{$$</p>", katex, tmp_path)
    assert "$$" in dom and 'class="katex-display"' not in dom
