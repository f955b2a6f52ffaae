"""The strip chart page in headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium): it loads with the token from its address, plots every stored result, shows the lag,
and updates without a reload when new results arrive. A screenshot is saved in the test's folder."""
import io
import math
import shutil

import numpy as np
import pytest
import zmq
from monitorhelpers import endpoints

from xrais.monitor import Collector
from xrais.monitor.protocol import decode, encode

TOKEN = "page-token"
RUN = "/data/lyso/lyso_1_#####.cbf"


def _browser_paths():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("headless browser test: Debian's chromium and chromium-driver are not installed "
                    "(apt-get install -y chromium chromium-driver; .ci/run does this)")
    return chromium, driver


#: What a worker running an experimental multi-lattice model says beside each of its rows.
EXPERIMENTAL = ["multilattice", "p_multilattice"]
#: Why image 40's multi-lattice predictor gave no answer (the result's ``not_analysed``).
NOT_ANALYSED = "multilattice: no lattice indexed: 12 spots, fewer than the 20 a search needs"


def _rows(numbers, seed=0):
    """Results of a rotation series: resolution drifting 1.8–2.6 Å, a multi-lattice stretch (from an
    experimental model), one unreadable image (number 97) and one skipped (number 131)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in numbers:
        row = {"run": RUN, "image": RUN.replace("#####", f"{n:05d}"), "frame": 0, "number": n, "worker": "w1",
               "received": 0.0, "analysed": 0.0, "source": None}
        if n == 97:
            rows.append(dict(row, status="error", error="CBF file has no binary data section", result=None))
        elif n == 131:
            rows.append(dict(row, status="skipped", error="not analysed: the queue was full", result=None))
        else:
            d_min = 2.2 + 0.3 * math.sin(n / 18) + 0.08 * rng.standard_normal()
            p = float(np.clip((0.8 if 60 <= n <= 85 else 0.12) + 0.08 * rng.standard_normal(), 0, 1))
            result = {"d_min": round(d_min, 3), "d_mean": round(d_min + 0.2, 3), "p_multilattice": round(p, 3),
                      "multilattice": p > 0.5, "diffraction": True}
            if n == 40:  # a frame one predictor could not read
                result.update(p_multilattice=None, multilattice=None, not_analysed=NOT_ANALYSED)
            rows.append(dict(row, status="ok", error=None, experimental=EXPERIMENTAL, result=result))
    return rows


class _Feed:
    """Results sent to the collector as a feeder sends them (rows, acknowledged; status)."""

    def __init__(self, endpoint):
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.connect(endpoint)

    def rows(self, rows):
        self.socket.send(encode({"type": "rows", "feeder": "beamline-feeder", "rows": rows}, TOKEN))
        assert len(decode(self.socket.recv())["keys"]) == len(rows)

    def status(self, received, analysed, queued):
        self.socket.send(encode({"type": "status", "feeder": "beamline-feeder", "received": received,
                                 "analysed": analysed, "skipped": 1, "errors": 1, "queued": queued,
                                 "waiting_on_disk": 0, "in_flight": 2, "oldest_waiting_s": 0.8,
                                 "workers": [{"worker": "w1"}, {"worker": "w2"}]}, TOKEN))

    def close(self):
        self.context.destroy(linger=0)


def _red_pixels(png: bytes) -> int:
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int(((abs(pixels[..., 0] - 211) < 30) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)).sum())


def test_the_strip_chart_shows_results_and_follows_new_ones(tmp_path):
    chromium, chromedriver = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, ingest, port = endpoints()
    collector = Collector(str(tmp_path / "monitor.sqlite"), ingest=ingest, http_port=port, token=TOKEN)
    collector.start()
    feed = _Feed(ingest)
    options = Options()
    options.binary_location = chromium
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,860",
                     f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        feed.rows(_rows(range(1, 121)))
        feed.status(received=124, analysed=118, queued=3)
        driver.get(f"http://127.0.0.1:{port}/?token={TOKEN}")
        chart = driver.find_element(By.ID, "chart")
        wait = WebDriverWait(driver, 30, poll_frequency=0.2)
        wait.until(lambda _: chart.get_attribute("data-points") == "120")
        assert chart.get_attribute("data-resolution-points") == "119"
        assert chart.get_attribute("data-multilattice-points") == "118"
        assert chart.get_attribute("data-not-analysed") == "1"
        assert chart.get_attribute("data-errors") == "1" and chart.get_attribute("data-run") == RUN
        wait.until(lambda _: driver.find_element(By.ID, "lag-received").text == "124")
        assert driver.find_element(By.ID, "lag-queued").text == "3"
        assert driver.find_element(By.ID, "health").text == "ok"
        summary = driver.find_element(By.ID, "summary").text
        assert "120 images (119 analysed, 1 errors" in summary
        # the multi-lattice numbers say they come from an experimental model; the resolution ones do not
        assert "experimental model" in summary.split("multi-lattice", 1)[1]
        assert "experimental" not in summary.split("multi-lattice", 1)[0]
        assert chart.get_attribute("data-multilattice-experimental") == "true"
        assert chart.get_attribute("data-resolution-experimental") == "false"
        assert driver.find_element(By.ID, "problem").get_attribute("hidden") is not None
        before = _red_pixels(driver.get_screenshot_as_png())
        driver.execute_script("window.loadedOnce = 'yes'")

        feed.rows(_rows(range(121, 161), seed=1))  # new results while the page is open
        feed.status(received=165, analysed=158, queued=1)
        wait.until(lambda _: chart.get_attribute("data-points") == "160")
        wait.until(lambda _: driver.find_element(By.ID, "lag-received").text == "165")
        assert chart.get_attribute("data-skipped") == "1" and chart.get_attribute("data-last-number") == "160"
        assert driver.execute_script("return window.loadedOnce") == "yes"  # updated without a reload
        screenshot = driver.get_screenshot_as_png()
        assert _red_pixels(screenshot) > before > 500
        (tmp_path / "strip-chart.png").write_bytes(screenshot)
        logs = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not logs, logs
    finally:
        driver.quit()
        feed.close()
        collector.stop()
