"""Debian's Chromium as the browser tests and scripts/screenshots.py drive it."""

CHROMIUM = "/usr/bin/chromium"
#: Headless, no sandbox (CI runs as root), nothing that reaches out to the network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
