"""Render an HTML file in headless Chromium (Debian package `chromium`) and check the screenshot is a real page."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

CHROMIUM_PACKAGE = "chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_binary() -> str:
    """The browser, installed through apt when missing (the test must run, never skip)."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    apt = shutil.which("apt-get")
    if apt is None:
        raise AssertionError(f"headless Chromium is needed and missing: install the {CHROMIUM_PACKAGE!r} package")
    subprocess.run([apt, "update"], check=False, capture_output=True, timeout=300)
    done = subprocess.run([apt, "install", "-y", CHROMIUM_PACKAGE], capture_output=True, text=True, timeout=600)
    path = shutil.which("chromium")
    if path is None:
        raise AssertionError(
            f"apt-get install -y {CHROMIUM_PACKAGE} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return path


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 2000) -> Image.Image:
    with tempfile.TemporaryDirectory(prefix="mp-chromium-") as profile:
        subprocess.run(
            [
                chromium_binary(),
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                f"--window-size={width},{height}",
                html.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    assert png.exists(), f"Chromium wrote no screenshot of {html}"
    return Image.open(png).convert("RGB")


def assert_real_page(image: Image.Image) -> None:
    """Not blank, not one colour, and with enough distinct colours to hold charts and text."""
    assert image.width >= 1000 and image.height >= 1000
    colours = image.getcolors(maxcolors=1 << 20)
    distinct = len(colours) if colours is not None else 1 << 20
    assert distinct > 50, f"screenshot has only {distinct} colours: the page did not render"
    lo, hi = image.convert("L").getextrema()
    assert isinstance(lo, int) and isinstance(hi, int)
    assert hi - lo > 100, "screenshot has no contrast: the page did not render"
