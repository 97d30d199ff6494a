"""The dashboard in a real browser: Debian's chromium, headless, over the DevTools protocol.

Each test signs in as a person would (typing the token, clicking ``Sign in``), acts with real
mouse clicks, and waits for what the page shows through the contract's hooks
(``data-workflow``, ``data-status``, ``data-task``, ``data-log``, ``data-alarm``). Each saves a
screenshot in its own output folder (and in ``$SPAD_SCREENSHOTS`` when set, for the README).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.cdp import Browser, Page, find_browser
from tests.conftest import Server, run_spad, task, wait_for

ACTIONS = ("Run", "Stop", "Restart", "Force stop", "Ack", "Clear", "Confirm")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    binary = find_browser()
    if binary is None:
        if os.environ.get("CI"):
            raise AssertionError("chromium is not installed: scripts/chromium-install")
        pytest.skip("chromium is not installed: run scripts/chromium-install")
    profile = tmp_path_factory.mktemp("chromium") / "profile"
    profile.mkdir()
    chromium = Browser(binary, profile)
    yield chromium
    chromium.close()


@pytest.fixture
def page(
    browser: Browser, server: Server, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh tab; its screenshot is taken at the end, while the server still runs."""
    tab = browser.new_page()
    yield tab
    shot = tab.screenshot(tmp_path / "screenshots" / f"{request.node.name}.png")
    wanted = os.environ.get("SPAD_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(wanted) / shot.name)
    errors = tab.errors()
    tab.call("Page.close")
    assert not errors, f"the page had errors: {errors}"


def sign_in(page: Page, server: Server, token: str | None = None) -> None:
    page.goto(server.url + "/ui/")
    page.type("document.getElementById('token')", token or server.token)
    page.click(button("Sign in"))


def button(text: str, inside: str = "document") -> str:
    """A JavaScript expression for the button whose text is ``text`` inside ``inside``."""
    return (
        f"[...({inside}?.querySelectorAll('button') ?? [])]"
        f".find(b => b.textContent.trim() === {json.dumps(text)} && !b.closest('[hidden]'))"
    )


def row(workflow: str) -> str:
    return f"document.querySelector('tr[data-workflow=\"{workflow}\"]')"


def status_of(workflow: str) -> str:
    return f"{row(workflow)}?.dataset.status"


def test_sign_in_and_see_a_workflow_end_without_a_reload(page: Page, server: Server) -> None:
    server.script("gated", "until [ -e go ]; do sleep 0.05; done\n")  # ends once seen running
    server.define("wf1", task("t1", "gated"))
    page.goto(server.url + "/ui/")
    page.type("document.getElementById('token')", "not-the-token-" + "x" * 30)
    page.click(button("Sign in"))
    page.wait("document.getElementById('sign-in-error').textContent.includes('Wrong token')")
    assert page.js("document.querySelectorAll('tr[data-workflow]').length") == 0
    page.js("document.getElementById('token').value = ''")
    page.type("document.getElementById('token')", server.token)
    page.click(button("Sign in"))
    page.wait(f"{status_of('pr1/wf1')} === 'not run'")
    assert page.js("sessionStorage.getItem('spad.token')") == server.token
    assert page.js("document.cookie") == ""
    page.js("window.loadedOnce = true")  # gone if the page were loaded again

    server.call("run", project="pr1", workflow="wf1")
    page.wait(f"{status_of('pr1/wf1')} === 'running'")
    (server.home / "data" / "go").touch()
    page.wait(f"{status_of('pr1/wf1')} === 'success0'")
    assert page.js("window.loadedOnce") is True
    assert page.js("document.getElementById('live').textContent") == "live"


def test_stop_asks_first_then_the_workflow_shows_stopped(page: Page, server: Server) -> None:
    server.define("wf1", task("t1", "simple", "60"))
    sign_in(page, server)
    page.wait(f"!!{row('pr1/wf1')}")
    page.click(button("Run", row("pr1/wf1")))
    page.wait(f"{status_of('pr1/wf1')} === 'running'")
    page.click(button("Stop", row("pr1/wf1")))
    page.wait(f"!!{button('Confirm')}")
    assert server.status("wf1")["status"] == "running"  # nothing happens before Confirm
    page.click(button("Confirm"))
    page.wait(f"{status_of('pr1/wf1')} === 'stopped'")
    server.wait_status("wf1", "stopped")


def test_a_task_log_follows_lines_printed_after_the_page_loaded(page: Page, server: Server) -> None:
    server.script(
        "talk",
        'echo "first line"\n'
        'while [ ! -e "$SPA_HOME/data/go" ]; do sleep 0.05; done\n'
        'echo "printed after the page loaded"\n'
        "sleep 60\n",
    )
    server.define("wf1", task("t0", "simple", "60", exec="parallel"), task("t1", "talk"))
    # Neighbours, so that the screenshot (the README's) shows a dashboard at work.
    server.define("nightly", task("fetch", "simple", "0"), task("report", "simple", "0"))
    server.define("ingest", task("load", "error", "2", retries=0))
    for workflow in ("nightly", "ingest", "wf1"):
        server.call("run", project="pr1", workflow=workflow)
    server.call("signal_raise", project="pr1", source="ana", kind="drift", severity="warning")
    server.wait_status("ingest", "error(2)")
    sign_in(page, server)
    page.click(f"{row('pr1/wf1')}?.querySelector('a')")
    page.wait("!!document.querySelector('tr[data-task=\"t1\"]')")
    page.click("document.querySelector('tr[data-task=\"t1\"] a')")
    log = "document.querySelector('[data-log=\"t1\"]')"
    page.wait(f"{log}?.textContent.includes('first line')")
    assert "printed after" not in page.js(f"{log}.textContent")
    (server.home / "data" / "go").write_text("")
    page.wait(f"{log}.textContent.includes('printed after the page loaded')")
    assert page.js("document.querySelector('tr[data-task=\"t1\"]').dataset.status") == "running"


def test_ack_an_alarm(page: Page, server: Server) -> None:
    server.call(
        "signal_raise",
        project="pr1",
        source="analysis",
        kind="drift",
        severity="critical",
        message="3 sigma",
    )
    alarm = wait_for(lambda: server.call("alarms_list")["alarms"])[0]
    sign_in(page, server)
    alarm_row = f"document.querySelector('tr[data-alarm=\"{alarm['id']}\"]')"
    page.wait(f"{alarm_row}?.dataset.state === 'open'")
    page.click(button("Ack", alarm_row))
    page.wait(f"{alarm_row}?.dataset.state === 'acknowledged'")
    assert server.call("alarms_list")["alarms"][0]["state"] == "acknowledged"


def test_the_read_only_token_shows_no_action(page: Page, server: Server) -> None:
    server.define("wf1", task("t1", "simple", "60"), task("t2", "simple", "0"))
    server.define("wf2", task("t1", "simple", "0"))
    server.call("run", project="pr1", workflow="wf1")
    server.call("signal_raise", project="pr1", source="analysis", kind="drift", severity="warning")
    wait_for(lambda: server.call("alarms_list")["alarms"])
    made = run_spad("token", "--read-only", "--home", str(server.home))
    assert made.returncode == 0, made.stderr
    sign_in(page, server, made.stdout.strip())
    page.wait(f"{status_of('pr1/wf1')} === 'running'")
    page.wait(f"{status_of('pr1/wf2')} === 'not run'")
    page.wait("!!document.querySelector('tr[data-alarm]')")
    page.click(f"{row('pr1/wf1')}?.querySelector('a')")
    page.wait("!!document.querySelector('tr[data-task=\"t1\"]')")
    shown = page.js(
        "[...document.querySelectorAll('button')].filter(b => !b.closest('[hidden]'))"
        ".map(b => b.textContent.trim())"
    )
    assert not set(shown) & set(ACTIONS), shown
    assert page.js("document.getElementById('mode').textContent") == "read-only"
    server.call("stop", project="pr1", workflow="wf1", force=True)


def test_restart_force_stop_filter_and_search(page: Page, server: Server) -> None:
    server.define("alpha", task("t1", "simple", "60"))
    server.define("beta", task("t1", "simple", "0"))
    server.call("run", project="pr1", workflow="beta")
    server.wait_status("beta", "success0")
    sign_in(page, server)
    page.click(button("Run", row("pr1/alpha")))
    page.wait(f"{status_of('pr1/alpha')} === 'running'")
    first_run = server.status("alpha")["run_id"]

    page.click(button("Restart", row("pr1/alpha")))
    page.click(button("Confirm"))
    page.wait(f"{row('pr1/alpha')}?.children[3].textContent === '{first_run + 1}'")
    page.wait(f"{status_of('pr1/alpha')} === 'running'")
    assert server.status("alpha")["run_id"] == first_run + 1

    visible = "[...document.querySelectorAll('tr[data-workflow]')].map(r => r.dataset.workflow)"
    page.js(
        "document.getElementById('filter').value = 'active';"
        " document.getElementById('filter').dispatchEvent(new Event('change'))"
    )
    assert page.wait(f"{visible}.join() === 'pr1/alpha'")
    page.js(
        "document.getElementById('filter').value = '';"
        " document.getElementById('filter').dispatchEvent(new Event('change'))"
    )
    page.type("document.getElementById('search')", "bet")
    assert page.wait(f"{visible}.join() === 'pr1/beta'")
    page.js(
        "document.getElementById('search').value = '';"
        " document.getElementById('search').dispatchEvent(new Event('input'))"
    )

    page.click(button("Force stop", row("pr1/alpha")))
    page.click(button("Confirm"))
    page.wait(f"{status_of('pr1/alpha')} === 'stopped'")
    page.click(f"{row('pr1/alpha')}?.querySelector('a')")
    page.wait("document.querySelector('tr[data-task=\"t1\"]')?.dataset.status === 'killed'")
