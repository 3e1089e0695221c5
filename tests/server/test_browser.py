"""The page in a real browser: Playwright drives the system's headless Chromium (never `playwright install`)
against `cfedit serve` on a free loopback port with the tiny trained run.

It loads the page, picks an example, sets do(C = green), clicks Edit, waits for the grid and the
certificate, checks what they show, and saves screenshots (1280x800 and a narrow one) as test artefacts
(the pytest tmp folder). ``CFEDIT_SCREENSHOT_RUN=runs/demo/editor CFEDIT_SCREENSHOT=docs/img/web-editor.png``
serves that run instead and also writes the wide screenshot there (the web editor page's figure).
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from cfedit.runs import list_pretrained
from cfedit.worlds import get_world

pytestmark = pytest.mark.slow  # every test here uses the trained run of conftest.py

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p and Path(p).exists()), None)
SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _serving(args: list[str], log: Path):
    """``cfedit serve ARGS`` on a free loopback port: its url once it answers; stopped on leaving."""
    if CHROMIUM is None:
        pytest.skip("NO BROWSER: Chromium not found (/usr/bin/chromium); install it (apt-get install chromium) to run the page test",
                    allow_module_level=False)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cfedit", "serve", *args, "--port", str(port), "--threads", "1"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            pytest.fail(f"cfedit serve exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url + "/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.terminate()
        pytest.fail(f"cfedit serve did not answer within 60 s: {log.read_text()[-2000:]}")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    run = os.environ.get("CFEDIT_SCREENSHOT_RUN") or str(tiny_run[1])
    with _serving([run], tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


def test_pick_intervene_edit_certify(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    k = 6
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server)
            expect(page.locator("#diagram svg circle")).to_have_count(3)
            assert page.locator("#diagram svg path.bidirected").get_attribute("stroke-dasharray")  # D <-> C, dashed
            expect(page.locator("#diagram svg line.directed")).to_have_count(2)
            expect(page.locator("#examples button")).not_to_have_count(0)
            page.locator("#examples button").first.click()
            expect(page.locator("#factual-reading")).to_contain_text("C=")
            page.select_option("select[data-factor=C]", "green")
            page.fill("#k", str(k))
            page.click("#edit-button")
            expect(page.locator("#grid .tile")).to_have_count(k + 1, timeout=30_000)  # the factual image, then k edits
            expect(page.locator("#edit-title")).to_have_text(f"do(C=green), k = {k}")
            rows = page.locator("#certificate tr")
            expect(rows.first).to_contain_text("optimal bounds")
            texts = rows.all_inner_texts()[1:]
            kept = [t for t in texts if re.match(r"P\(D\[C=green\]=(\d) \| D=\1,", t)]  # D keeps its factual digit
            assert len(kept) == 1 and kept[0].split("\t")[1:3] == ["[1.000, 1.000]", "yes"], texts  # D is no descendant of C
            assert texts and all(len(t.split("\t")) == 6 and t.split("\t")[4] in ("yes", "no") for t in texts), texts
            assert page.locator("#grid .tile a[download]").count() == k + 1
            expect(page.locator("#distributions tr")).to_have_count(4)
            assert not errors, errors
            page.screenshot(path=str(tmp_path / "web-editor.png"), full_page=True)
            if os.environ.get("CFEDIT_SCREENSHOT"):
                page.screenshot(path=os.environ["CFEDIT_SCREENSHOT"], full_page=True)
            page.fill("#query", "P(B[C=green]=1 | D=7, C=red, B=0)")
            page.click("#bounds-form button")
            expect(page.locator("#bounds-out")).to_contain_text("[0.500, 0.750]")
            page.set_viewport_size({"width": 390, "height": 844})  # a phone: one column, nothing wider than the screen
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(tmp_path / "web-editor-narrow.png"), full_page=True)
        finally:
            browser.close()
    print(f"screenshots: {tmp_path}")


SHIPPED = [a.name for a in list_pretrained()]


@pytest.mark.skipif(not SHIPPED, reason="this checkout ships no trained editor")
def test_with_no_run_every_shipped_editor_is_offered_and_edits(tmp_path):
    """`cfedit serve` alone serves every shipped editor: the page's selector lists them, choosing one loads its
    world's diagram, and an edit with it comes back with its certificate."""
    from playwright.sync_api import expect, sync_playwright

    with _serving([], tmp_path / "serve.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            expect(page.locator("#run-choice")).to_be_visible()
            assert page.locator("#run-select option").all_inner_texts() == SHIPPED
            for name in SHIPPED:
                page.select_option("#run-select", name)
                page.wait_for_url(f"{url}/w/{name}/")
                world = get_world(name)
                expect(page.locator("#run-line")).to_contain_text(f"world {name}")
                expect(page.locator("#diagram svg circle")).to_have_count(len(world.graph.nodes))
                page.locator("#examples button").first.click()
                factor, value = next(iter(world.figure_actions[0].items()))
                if world.domains.is_continuous(factor):  # a slider: moved to the value as a user would drag it
                    page.locator(f"input[type=range][data-factor={factor}]").evaluate(
                        f"(e) => {{ e.value = '{value}'; e.dispatchEvent(new Event('input', {{ bubbles: true }})); }}")
                else:
                    page.select_option(f"select[data-factor={factor}]", value)
                page.fill("#k", "2")
                page.click("#edit-button")
                expect(page.locator("#grid .tile")).to_have_count(3, timeout=30_000)
                expect(page.locator("#edit-title")).to_have_text(f"do({factor}={value}), k = 2")
            page.screenshot(path=str(tmp_path / "web-editor-shipped.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()


@pytest.fixture(scope="module")
def morpho_server(tiny_morpho_run, tmp_path_factory):
    """`cfedit serve` on the continuous run's folder: it is matched to world morpho by its graph and factors."""
    with _serving([str(tiny_morpho_run[1])], tmp_path_factory.mktemp("serve-morpho") / "serve.log") as url:
        yield url


def test_a_continuous_factor_is_set_with_a_slider(morpho_server, tmp_path):
    """T and I get sliders over their intervals (D keeps its list); picking an example shows its reading as
    numbers and starts the sliders there; a slid value is sent as a number and the edit comes back with its
    images and a certificate over the declared bins."""
    from playwright.sync_api import expect, sync_playwright

    k = 3
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(morpho_server)
            expect(page.locator("#run-line")).to_contain_text("world morpho")
            t = page.locator("input[type=range][data-factor=T]")
            expect(t).to_be_visible()
            assert (t.get_attribute("min"), t.get_attribute("max"), t.get_attribute("step")) == ("1.5", "6.5", "0.01")
            assert page.locator("input[type=range][data-factor=I]").get_attribute("step") == "1"
            expect(page.locator("select[data-factor=D]")).to_have_count(1)
            expect(page.locator("select[data-factor=T], select[data-factor=I]")).to_have_count(0)
            page.locator("#examples button").first.click()
            expect(page.locator("#factual-reading")).to_have_text(re.compile(r"D=\d, T=\d\.\d{3}, I=\d+\.\d"))
            reading = float(re.search(r"T=(\d\.\d+)", page.locator("#factual-reading").inner_text()).group(1))
            assert float(page.locator("input[data-factor-value=T]").input_value()) == pytest.approx(reading, abs=0.01)
            assert not page.locator("input[data-factor-on=T]").is_checked()  # not set until it is moved
            t.evaluate("(e) => { e.value = '4'; e.dispatchEvent(new Event('input', { bubbles: true })); }")
            t.focus()
            page.keyboard.press("ArrowRight")  # one step up: 4.01
            expect(page.locator("input[data-factor-value=T]")).to_have_value("4.01")
            assert page.locator("input[data-factor-on=T]").is_checked() and not page.locator("input[data-factor-on=I]").is_checked()
            page.fill("#k", str(k))
            with page.expect_request("**/api/edit") as sent:
                page.click("#edit-button")
            assert sent.value.post_data_json["do"] == {"T": 4.01}  # a number, not text
            expect(page.locator("#grid .tile")).to_have_count(k + 1, timeout=60_000)
            expect(page.locator("#edit-title")).to_have_text(f"do(T=4.01), k = {k}")
            assert all(src.startswith("data:image/png;base64,") for src in
                       page.locator("#grid .tile img").evaluate_all("(imgs) => imgs.map((i) => i.src)"))
            assert all(re.search(r"T=\d\.\d{3}", c) for c in page.locator("#grid .tile figcaption").all_inner_texts())
            texts = page.locator("#certificate tr").all_inner_texts()[1:]
            assert texts and all("[T=3.5-6.5]" in row for row in texts), texts
            expect(page.locator("#cert-note")).to_contain_text("declared bins")
            expect(page.locator("#distributions tr")).to_have_count(4)
            value = page.locator("input[data-factor-value=T]")
            value.fill("9")  # outside [1.5, 6.5]: the browser's form check stops it before any request
            assert value.evaluate("(e) => e.validity.rangeOverflow") and t.input_value() == "6.5"
            requests = []
            page.on("request", lambda r: requests.append(r.url) if r.url.endswith("/api/edit") else None)
            page.click("#edit-button")
            page.wait_for_timeout(300)
            assert not requests
            assert not errors, errors
            page.screenshot(path=str(tmp_path / "web-editor-continuous.png"), full_page=True)
        finally:
            browser.close()
