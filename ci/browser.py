"""browser — headless Chromium for the report: load a page, read its DOM and console, take
a screenshot (standard library only).

Theory of operation
-------------------
Debian's `chromium` runs headless with a fresh profile per call (a temporary
--user-data-dir, removed afterwards), no sandbox (CI runs as root), no GPU, and every
background service off (networking, component updates, sync, QUIC), and /dev/shm unused
(a container gives it 64 MiB), so a run touches nothing outside its temporary directory and
needs no network. `--virtual-time-budget`
lets the page finish loading (its images, its load handler) before the DOM is dumped or
the screenshot taken. Console messages come back on stderr with --enable-logging=stderr
as `...:CONSOLE...] "message", source: URL (line)`; `console_messages` picks them out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=8000"]
CONSOLE = re.compile(r":CONSOLE[^\]]*\] (.*)$", re.M)


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run(page: Path, extra: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (sudo apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="vmfuzz-chromium-") as profile:
        cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout)


def dump_dom(page: Path) -> tuple[str, list[str]]:
    """(the DOM after load, console messages)."""
    proc = run(page, ["--dump-dom"])
    return proc.stdout, console_messages(proc.stderr)


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 2600) -> list[str]:
    """Write a screenshot of the page's top width x height pixels; console messages."""
    proc = run(page, [f"--window-size={width},{height}", f"--screenshot={png.resolve()}"])
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-800:]}")
    return console_messages(proc.stderr)


def console_messages(stderr: str) -> list[str]:
    return CONSOLE.findall(stderr)
