"""report.html in a real browser: headless Chromium (Debian's, driven by playwright) at 1400 px wide.

Skips, saying why, where playwright or the system Chromium is missing (`pip install -e ".[browser]"` and
`apt-get install chromium`; CI installs both). No browser is downloaded: playwright drives /usr/bin/chromium.
With COSTBENCH_REPORT_SCREENSHOT=PATH the top of the page is saved there (docs/report-top.png is made so).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from costbench.report import ReportOptions, render_report
from tests.rundirs import record, write

EXAMPLE = Path(__file__).parent.parent / "results" / "examples" / "cpu-precision"
WIDTH = 1400
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Any:
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed: pip install -e '.[browser]'")
    if CHROMIUM is None:
        pytest.skip("no system Chromium (apt-get install chromium); playwright's own browser download is not used")
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: CI and these machines run as root, where Chromium's sandbox refuses to start
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def rendered(run: Path) -> Path:
    render_report(run, ReportOptions(format="none"), console=Console(file=io.StringIO()),
                  stderr=Console(file=io.StringIO()))
    return run / "report.html"


def overflow(page: Any) -> list[str]:
    """Every table (collapsed ones opened) wider than its box or than the viewport."""
    return page.evaluate("""() => {
        document.querySelectorAll('details').forEach(d => { d.open = true; });
        const out = [];
        document.querySelectorAll('table').forEach((t, i) => {
            const right = t.getBoundingClientRect().right;
            if (t.scrollWidth > t.clientWidth || right > window.innerWidth)
                out.push(`table ${i} (${t.caption ? t.caption.textContent : ''}): scrollWidth ${t.scrollWidth}, `
                         + `clientWidth ${t.clientWidth}, right edge ${right} of ${window.innerWidth}`);
        });
        if (document.documentElement.scrollWidth > window.innerWidth)
            out.push(`page scrolls sideways: ${document.documentElement.scrollWidth} px`);
        return out;
    }""")


def test_a_real_run_reads_as_a_decision_at_1400_px(browser: Any, tmp_path: Path) -> None:
    run = tmp_path / "cpu-precision"
    shutil.copytree(EXAMPLE, run)
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    page.goto(rendered(run).as_uri())
    card = page.locator("#decision")
    assert card.is_visible()
    assert card.inner_text().startswith("Ship ")
    box = card.bounding_box()
    assert box is not None and box["y"] < 300  # at the top, seen without scrolling
    if target := os.environ.get("COSTBENCH_REPORT_SCREENSHOT"):
        page.screenshot(path=target, clip={"x": 0, "y": 0, "width": WIDTH, "height": 900})
    assert overflow(page) == []
    assert page.locator("img").count() >= 3 and page.locator("svg.scatter circle").count() >= 36
    page.close()


def test_an_all_failed_run_shows_its_failures(browser: Any, tmp_path: Path) -> None:
    reasons = ["NaN loss at epoch 2 step 14", "fp16 training is not supported on this CPU: " + "x" * 300]
    records = [record(f"f{i:011d}", {"model.size": "s", "precision": p}, status, reason=reason)
               for i, (p, status, reason) in enumerate(zip(["fp32", "fp16"], ["failed", "skipped"], reasons,
                                                           strict=True))]
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    page.goto(rendered(write(tmp_path / "run", records)).as_uri())
    assert page.locator("#decision").inner_text().startswith("Nothing to ship")
    text = page.locator("body").inner_text()
    assert "NaN loss at epoch 2 step 14" in text and "not supported on this CPU" in text
    assert overflow(page) == []  # a long reason wraps inside its cell
    page.close()
