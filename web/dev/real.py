"""Dev-only: two browsers against a real `taube serve` on loopback."""
import sys, time
from playwright.sync_api import sync_playwright, expect

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8479"
OUT = "/tmp/taube-shots"
stamp = str(int(time.time()))[-6:]

def signup(page, user):
    page.goto(BASE + "/")
    page.get_by_test_id("signup-address").fill(user)
    page.get_by_test_id("signup-password").fill("correct horse battery")
    page.get_by_test_id("signup-submit").click()
    expect(page.get_by_test_id("recovery-code")).to_be_visible(timeout=20000)
    code = page.get_by_test_id("recovery-code").inner_text()
    page.get_by_test_id("recovery-stored").check()
    page.get_by_test_id("recovery-confirm").click()
    expect(page.get_by_test_id("new-chat")).to_be_visible()
    return code

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-background-networking"])
    pages = []
    for size in [(1440, 900), (360, 740)]:
        ctx = browser.new_context(viewport={"width": size[0], "height": size[1]})
        page = ctx.new_page()
        page.on("pageerror", lambda e: print("pageerror", e))
        page.on("console", lambda m: print("console", m.type, m.text) if m.type in ("error", "warning") else None)
        pages.append(page)
    a, b = pages
    alice, bob = f"alice{stamp}@localhost", f"bob{stamp}@localhost"
    print("recovery", signup(a, alice))
    signup(b, bob)
    a.get_by_test_id("new-chat").click()
    a.get_by_test_id("new-chat-address").fill(bob)
    a.get_by_test_id("new-chat-submit").click()
    expect(a.get_by_test_id("composer")).to_be_visible(timeout=15000)
    a.get_by_test_id("composer").fill("Hello Bob, this is encrypted")
    a.get_by_test_id("composer").press("Enter")
    expect(a.get_by_test_id("message").last).to_contain_text("Hello Bob")
    expect(b.get_by_test_id("conversation")).to_have_count(1, timeout=15000)
    b.get_by_test_id("conversation").first.click()
    expect(b.get_by_test_id("message").last).to_contain_text("Hello Bob", timeout=15000)
    m = b.get_by_test_id("message").last
    m.get_by_test_id("message-menu").click()
    m.locator('[data-testid=reaction-pick][data-emoji="❤️"]').click()
    expect(a.locator('[data-testid=message] [data-testid=reaction][data-emoji="❤️"]')).to_be_visible(timeout=15000)
    expect(a.get_by_test_id("message").last).to_have_attribute("data-status", "read", timeout=15000)
    b.get_by_test_id("composer").fill("Hi Alice! 👋")
    b.get_by_test_id("send").click()
    expect(a.get_by_test_id("message").last).to_contain_text("Hi Alice", timeout=15000)
    a.get_by_test_id("file-input").set_input_files("/work/main/web/public/icon-512.png")
    a.get_by_test_id("photo-send").click()
    expect(b.get_by_test_id("message").last.get_by_test_id("attachment-image")).to_have_attribute("data-loaded", "true", timeout=20000)
    # a group, its info panel, an edit and a delete seen on the other side
    a.get_by_test_id("new-group").click()
    a.get_by_test_id("new-group-title").fill("Weekend plans")
    a.get_by_test_id("new-group-members").fill(bob)
    a.get_by_test_id("new-group-submit").click()
    expect(a.get_by_test_id("chat-title")).to_have_text("Weekend plans", timeout=15000)
    a.get_by_test_id("composer").fill("Group hello")
    a.get_by_test_id("composer").press("Enter")
    expect(b.locator("[data-testid=conversation]")).to_have_count(2, timeout=15000)
    b.get_by_test_id("back").click()
    b.locator("[data-testid=conversation]", has_text="Weekend plans").click()
    expect(b.get_by_test_id("message").last).to_contain_text("Group hello", timeout=15000)
    m = a.get_by_test_id("message").last
    m.hover()
    m.get_by_test_id("message-menu").click()
    m.get_by_test_id("menu-edit").click()
    m.get_by_test_id("edit-input").fill("Group hello, edited")
    m.get_by_test_id("edit-input").press("Enter")
    expect(b.get_by_test_id("message").last.get_by_test_id("message-edited")).to_be_visible(timeout=15000)
    m.get_by_test_id("message-menu").click()
    m.get_by_test_id("menu-delete").click()
    a.get_by_test_id("confirm-ok").click()
    expect(b.get_by_test_id("message").last.get_by_test_id("message-deleted")).to_be_visible(timeout=15000)
    a.get_by_test_id("chat-info").click()
    expect(a.get_by_test_id("member")).to_have_count(2)
    a.screenshot(path=f"{OUT}/real-group-info.png")
    a.keyboard.press("Escape")
    a.locator("[data-testid=conversation]", has_text=bob).click()
    a.wait_for_timeout(1000)
    a.screenshot(path=f"{OUT}/real-desktop.png")
    b.screenshot(path=f"{OUT}/real-phone.png")
    browser.close()
    print("ok")
