"""What the browser tests check on every page: axe-core's accessibility rules, buttons with names,
a focus ring, keyboard reach, and a layout where the message never covers a control.

axe-core comes from npm (package.json; ``scripts/setup.sh dev`` runs ``npm ci``). Without it the
axe checks skip with a reason; the others always run.
"""

from __future__ import annotations

import pytest

from conftest import ROOT

AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is: [{rule, impact, nodes}]."""
    if not AXE_JS.is_file():
        pytest.skip(f"axe-core is not installed at {AXE_JS.relative_to(ROOT)} (scripts/setup.sh dev runs npm ci)")
    # through the DevTools protocol: a <script> added to the page would be refused by its
    # Content-Security-Policy (no inline script), which these tests keep in force
    page.evaluate(AXE_JS.read_text() + "\n;true")
    page.wait_for_timeout(400)  # colours read mid-transition (a button just pressed) are not the page's
    return page.evaluate("""async () => (await axe.run(document)).violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => ({rule: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' '))}))""")


# The visible controls (buttons, links, inputs) outside the message whose box meets the message's box.
_COVERED = """() => {
    const msg = document.getElementById('message');
    if (!msg || msg.offsetParent === null) return [];
    const m = msg.getBoundingClientRect();
    return Array.from(document.querySelectorAll('button, a[href], input, select, textarea, [role=radio]'))
        .filter((c) => c.offsetParent !== null && !msg.contains(c))
        .filter((c) => {
            const b = c.getBoundingClientRect();
            return b.width > 0 && b.left < m.right && m.left < b.right && b.top < m.bottom && m.top < b.bottom;
        })
        .map((c) => c.id || c.className);
}"""


def covered_controls(page) -> list[str]:
    return page.evaluate(_COVERED)


def in_view(page, selector: str) -> dict:
    """Whether the element's whole box is inside the window, with the box and the window's size."""
    return page.evaluate("""(s) => {
        const r = document.querySelector(s).getBoundingClientRect();
        return {whole: r.width > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight + 0.5
                       && r.right <= innerWidth + 0.5,
                box: r.toJSON(), window: [innerWidth, innerHeight]};
    }""", selector)


def unnamed_buttons(page) -> list[str]:
    """Visible buttons a screen reader would announce without a name."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('button, [role=button], [role=radio]'))
        .filter((b) => b.offsetParent !== null)
        .filter((b) => {
            const by = (b.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)
                .map((id) => (document.getElementById(id) || {}).textContent || '').join(' ');
            return !(by.trim() || (b.getAttribute('aria-label') || '').trim() || b.innerText.trim()
                     || (b.getAttribute('title') || '').trim());
        })
        .map((b) => b.id || b.className)""")


def _start_at_the_top(page) -> None:
    """The next Tab starts from the top of the page: a click on its empty top-left corner."""
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    page.mouse.click(2, 2)


def tab_through(page, limit: int = 80) -> list[str]:
    """Presses Tab from the top of the page; returns the ids (or classes) of what took the focus."""
    _start_at_the_top(page)
    seen: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        here = page.evaluate("document.activeElement === document.body ? null"
                             " : (document.activeElement.id || document.activeElement.className)")
        if here is None or (seen and here == seen[0]):
            break
        seen.append(here)
    return seen


def tab_to(page, selector: str, limit: int = 80) -> None:
    """Moves the keyboard focus to ``selector`` with Tab alone (fails if Tab never gets there)."""
    _start_at_the_top(page)
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement === document.querySelector(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def focus_ring(page, selector: str) -> dict:
    """The focused element's outline and shadow, and the same with the focus gone: a ring shows
    when a keyboard user lands on it. Call with the element focused by the keyboard; it leaves
    the element without the focus."""
    return page.evaluate("""async (s) => {
        const e = document.querySelector(s);
        const settled = () => new Promise((done) => setTimeout(done, 400));  // the buttons' transitions
        const look = () => { const c = getComputedStyle(e);
                             return {outline: `${c.outlineStyle} ${c.outlineWidth}`, shadow: c.boxShadow}; };
        await settled();
        const focused = look();
        const visible = e.matches(':focus-visible');
        e.blur();
        await settled();
        return {visible, focused, blurred: look()};
    }""", selector)


def assert_focus_ring(page, selector: str) -> None:
    ring = focus_ring(page, selector)
    assert ring["visible"], f"{selector} has no :focus-visible after Tab"
    assert ring["focused"] != ring["blurred"], f"nothing shows that {selector} has the focus: {ring}"
    outline = ring["focused"]["outline"]
    assert not outline.startswith("none") or "rgb" in ring["focused"]["shadow"], ring
