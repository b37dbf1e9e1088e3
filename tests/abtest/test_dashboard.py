"""The dashboard: its numbers (by hand), and the page as headless Chromium renders it after its JavaScript ran."""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from scipy.stats import chisquare

from llmlab.abtest.dashboard import Z95, render_page, stats_payload
from llmlab.abtest.loadgen import ServerProcess, free_port, run_load

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _summary(values: list[float], assignments: int, users: int) -> dict:
    v = np.array(values)
    return {
        "assignments": assignments,
        "users": users,
        "outcomes": len(v),
        "total": v.sum(),
        "total_sq": (v * v).sum(),
    }


def test_stats_payload_by_hand():
    a, b = [1, 0, 0, 1, 0], [1, 1, 0, 1]
    stats = stats_payload("e", {"A": 0.5, "B": 0.5}, {"A": _summary(a, 9, 7), "B": _summary(b, 6, 5)})
    va, vb = stats["variants"]["A"], stats["variants"]["B"]
    assert stats["control"] == "A" and (va["users"], va["assignments"], va["outcomes"]) == (7, 9, 5)
    assert va["mean_outcome"] == pytest.approx(0.4) and vb["mean_outcome"] == pytest.approx(0.75)
    se_a = np.std(a, ddof=1) / math.sqrt(5)
    assert va["ci95"] == pytest.approx([0.4 - Z95 * se_a, 0.4 + Z95 * se_a])
    se = math.sqrt(np.var(a, ddof=1) / 5 + np.var(b, ddof=1) / 4)
    assert vb["difference"] == pytest.approx(0.35)
    assert vb["difference_ci95"] == pytest.approx([0.35 - Z95 * se, 0.35 + Z95 * se])
    assert va["difference"] is None
    assert stats["srm_p_value"] == pytest.approx(chisquare([7, 5]).pvalue)


def test_stats_payload_before_any_event():
    stats = stats_payload("e", {"B": 0.3, "A": 0.7}, {})
    assert list(stats["variants"]) == ["A", "B"] and stats["srm_p_value"] is None
    assert stats["variants"]["B"] == {
        "share": 0.3,
        "users": 0,
        "assignments": 0,
        "outcomes": 0,
        "mean_outcome": None,
        "ci95": None,
        "difference": None,
        "difference_ci95": None,
    }


def test_the_experiment_name_is_escaped():
    assert "<code>&lt;script&gt;</code>" in render_page("<script>")


class _Rows(HTMLParser):
    """The text of each cell of each `<tr data-variant=...>`."""

    def __init__(self):
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr" and dict(attrs).get("data-variant"):
            self._row = self.rows.setdefault(dict(attrs)["data-variant"], [])
        elif tag == "td" and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._row:
            self._row[-1] += data


def _chromium(url: str, *args: str, user_dir) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={user_dir}",
        "--window-size=1200,800",
        "--virtual-time-budget=5000",
    ]
    return subprocess.run([CHROMIUM, *flags, *args, url], capture_output=True, timeout=120, text=True)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_dashboard_renders_in_headless_chromium(tmp_path):
    import httpx
    from matplotlib.image import imread

    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "llmlab.abtest.loadgen",
        "--experiment",
        "dash",
        "--store",
        str(tmp_path / "l.db"),
    ]
    requests = [(f"u{i % 60}", f"text {i}") for i in range(150)]
    with ServerProcess([*argv, "--port", str(port)], port):
        asyncio.run(run_load("127.0.0.1", port, requests, 5, lambda u, v: float(v == "B" or u.endswith("7"))))
        stats = httpx.get(f"http://127.0.0.1:{port}/stats").json()
        url = f"http://127.0.0.1:{port}/"
        dom = _chromium(url, "--dump-dom", user_dir=tmp_path / "profile1")
        shot = _chromium(url, f"--screenshot={tmp_path}/shot.png", user_dir=tmp_path / "profile2")
    assert dom.returncode == 0, dom.stderr[-2000:]
    parser = _Rows()
    parser.feed(dom.stdout)
    assert set(parser.rows) == {"A", "B"}
    for name, v in stats["variants"].items():
        cells = parser.rows[name]
        assert cells[2:5] == [str(v["users"]), str(v["assignments"]), str(v["outcomes"])]
        assert cells[5] == f"{v['mean_outcome']:.4f}"
    assert sum(v["assignments"] for v in stats["variants"].values()) == 150
    assert shot.returncode == 0, shot.stderr[-2000:]
    image = imread(tmp_path / "shot.png")  # (800, 1200, channels)
    assert image.shape[:2] == (800, 1200)
    assert (tmp_path / "shot.png").stat().st_size > 10_000 and image.std() > 0.01  # not a blank page
