"""Dev-only: render public/icon.svg and icon-maskable.svg to the PNG icons."""
from pathlib import Path
from playwright.sync_api import sync_playwright

PUBLIC = Path(__file__).resolve().parent.parent / "public"
JOBS = [("icon.svg", "icon-192.png", 192), ("icon.svg", "icon-512.png", 512), ("icon-maskable.svg", "icon-maskable.png", 512)]

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-background-networking"])
    for src, out, size in JOBS:
        page = browser.new_page(viewport={"width": size, "height": size})
        svg = (PUBLIC / src).read_text().replace("<svg ", f'<svg width="{size}" height="{size}" ', 1)
        page.set_content(f"<html><body style='margin:0;background:transparent'>{svg}</body></html>")
        page.screenshot(path=str(PUBLIC / out), omit_background=True, clip={"x": 0, "y": 0, "width": size, "height": size})
        page.close()
    browser.close()
