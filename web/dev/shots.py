"""Dev-only: screenshots of the screens over the fixture (npx vite on 5174)."""
import sys
from playwright.sync_api import sync_playwright

BASE = "http://127.0.0.1:5174/dev/index.html"
OUT = "/tmp/taube-shots"
SCENES = {
    "list": "",
    "chat": "chat=c-alice",
    "group": "chat=c-club",
    "auth": "auth=1",
    "recovery": "recovery=1",
    "settings": "panel=settings",
    "info": "chat=c-club&panel=info",
    "contact": "chat=c-alice&panel=info",
    "offline": "offline=1&chat=c-david",
    "verify": "verify=1&chat=c-ben",
}
SIZES = {"phone": (360, 740), "desktop": (1440, 900)}

def main(names, themes=("light",)):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-background-networking"])
        for theme in themes:
            for size_name, (w, h) in SIZES.items():
                ctx = browser.new_context(viewport={"width": w, "height": h}, device_scale_factor=1, color_scheme=theme)
                page = ctx.new_page()
                errors = []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                for name in names:
                    q = SCENES[name]
                    if size_name == "desktop" and name == "list":
                        q = "chat=c-alice"
                    page.goto(f"{BASE}?{q}&theme={theme}")
                    page.wait_for_timeout(900)
                    page.screenshot(path=f"{OUT}/{name}-{size_name}-{theme}.png")
                if errors:
                    print(size_name, theme, "errors:", errors)
                ctx.close()
        browser.close()

if __name__ == "__main__":
    args = sys.argv[1:]
    themes = ("light", "dark") if "--dark" in args else ("light",)
    names = [a for a in args if not a.startswith("--")] or list(SCENES)
    main(names, themes)
