"""axe-core in the browser tests: the engine is the ``axe.min.js`` that the PyPI package
``axe-playwright-python`` (a dev dependency) vendors, injected into the page as it is."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from playwright.async_api import Page

# WCAG 2.0 and 2.1, levels A and AA: what the public-sector rules require of the console.
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = ("critical", "serious")


@cache
def axe_source() -> str:
    return (files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


async def violations(page: Page) -> list[dict[str, Any]]:
    """The page's critical and serious violations of WCAG 2.1 A/AA, as axe reports them."""
    await page.evaluate(axe_source())
    result: dict[str, Any] = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        TAGS,
    )
    return [v for v in result["violations"] if v.get("impact") in BLOCKING]


def report(where: str, found: list[dict[str, Any]]) -> str:
    """One readable block per rule: what, how bad, where (selectors), and axe's own hint."""
    lines = []
    for v in found:
        lines.append(f"{where}: [{v['impact']}] {v['id']}: {v['help']}")
        for node in v["nodes"][:5]:
            lines.append(f"    at {' '.join(node['target'])}: {node.get('failureSummary', '').strip()}")
        if len(v["nodes"]) > 5:
            lines.append(f"    … and {len(v['nodes']) - 5} more")
    return "\n".join(lines)
