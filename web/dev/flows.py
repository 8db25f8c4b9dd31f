"""Dev-only: drive the main flows over the fixture and screenshot them."""
from playwright.sync_api import sync_playwright, expect

BASE = "http://127.0.0.1:5174/dev/index.html"
OUT = "/tmp/taube-shots"

with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path="/usr/bin/chromium",
        args=["--no-sandbox", "--disable-background-networking", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"],
    )
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    ctx.grant_permissions(["clipboard-read", "clipboard-write", "microphone"])
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # sign up
    page.goto(f"{BASE}?auth=1")
    page.get_by_test_id("signup-address").fill("new@taube.example")
    page.get_by_test_id("signup-password").fill("correct horse battery")
    page.get_by_test_id("signup-submit").click()
    expect(page.get_by_test_id("recovery-code")).to_have_text("K7QM-4XRT-PW2H-9CZD-LM3V-A8NE")
    expect(page.get_by_test_id("recovery-confirm")).to_be_disabled()
    page.screenshot(path=f"{OUT}/flow-recovery.png")
    page.get_by_test_id("recovery-stored").check()
    page.get_by_test_id("recovery-confirm").click()
    expect(page.get_by_test_id("conversation").first).to_be_visible()

    # open a chat, send, reply, react, edit, delete
    page.locator('[data-testid=conversation][data-id=c-alice]').click()
    page.get_by_test_id("composer").fill("Hello from the test\nsecond line")
    page.get_by_test_id("send").click()
    msg = page.get_by_test_id("message").last
    expect(msg).to_contain_text("Hello from the test")
    expect(msg).to_have_attribute("data-status", "read", timeout=5000)
    page.get_by_test_id("composer").fill("Enter sends?")
    page.get_by_test_id("composer").press("Enter")
    expect(page.get_by_test_id("message").last).to_contain_text("Enter sends?")
    mid = page.get_by_test_id("message").last.get_attribute("data-id")
    m = page.locator(f'[data-testid=message][data-id="{mid}"]')
    m.hover()
    m.get_by_test_id("message-menu").click()
    m.locator('[data-testid=reaction-pick][data-emoji="👍"]').click()
    expect(m.locator('[data-testid=reaction][data-emoji="👍"]')).to_have_attribute("data-count", "1")
    m.get_by_test_id("message-menu").click()
    m.get_by_test_id("menu-edit").click()
    m.get_by_test_id("edit-input").fill("Edited text")
    m.get_by_test_id("edit-input").press("Enter")
    expect(m.get_by_test_id("message-text")).to_contain_text("Edited text")
    expect(m.get_by_test_id("message-edited")).to_be_visible()
    m.get_by_test_id("message-menu").click()
    m.get_by_test_id("menu-reply").click()
    expect(page.get_by_test_id("reply-bar")).to_be_visible()
    page.get_by_test_id("composer").fill("a reply")
    page.get_by_test_id("composer").press("Enter")
    expect(page.get_by_test_id("message").last.get_by_test_id("reply-quote")).to_be_visible()
    m.get_by_test_id("message-menu").click()
    m.get_by_test_id("menu-delete").click()
    page.get_by_test_id("confirm-ok").click()
    expect(m.get_by_test_id("message-deleted")).to_be_visible()
    page.wait_for_timeout(4500)  # the fixture's contact answers the question
    page.screenshot(path=f"{OUT}/flow-chat.png")

    # photo through the editor
    page.get_by_test_id("file-input").set_input_files("/work/main/web/public/icon-512.png")
    expect(page.get_by_test_id("photo-editor")).to_be_visible()
    page.locator("[data-testid=photo-filter][data-filter=mono]").click()
    page.get_by_role("button", name="1:1").click()
    page.get_by_test_id("photo-caption").fill("the icon, in mono")
    page.screenshot(path=f"{OUT}/flow-editor.png")
    page.get_by_test_id("photo-send").click()
    expect(page.get_by_test_id("message").last.get_by_test_id("attachment-image")).to_be_visible()
    page.wait_for_timeout(300)
    page.screenshot(path=f"{OUT}/flow-upload.png")
    expect(page.get_by_test_id("message").last.get_by_test_id("attachment-image")).to_have_attribute("data-loaded", "true", timeout=5000)

    # voice message
    page.get_by_test_id("voice-record").click()
    expect(page.get_by_test_id("voice-recorder")).to_be_visible()
    page.wait_for_timeout(1500)
    page.screenshot(path=f"{OUT}/flow-recording.png")
    page.get_by_test_id("voice-send").click()
    expect(page.get_by_test_id("message").last.get_by_test_id("attachment-audio")).to_be_visible()

    # new chat, new group
    page.get_by_test_id("new-chat").click()
    page.get_by_test_id("new-chat-address").fill("zoe@taube.example")
    page.get_by_test_id("new-chat-submit").click()
    expect(page.get_by_test_id("chat-title")).to_have_text("zoe@taube.example")
    page.get_by_test_id("new-group").click()
    page.get_by_test_id("new-group-title").fill("Book club")
    page.get_by_test_id("new-group-members").fill("zoe@taube.example, alice@taube.example")
    page.get_by_test_id("new-group-submit").click()
    expect(page.get_by_test_id("chat-title")).to_have_text("Book club")
    page.get_by_test_id("chat-info").click()
    expect(page.get_by_test_id("member")).to_have_count(3)
    page.get_by_test_id("add-member-input").fill("ben.okafor@club.example")
    page.get_by_test_id("add-member-submit").click()
    expect(page.get_by_test_id("member")).to_have_count(4)
    page.screenshot(path=f"{OUT}/flow-group-info.png")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("group-info")).to_have_count(0)

    # timer
    page.get_by_test_id("chat-timer").click()
    page.locator("[data-testid=timer-option][data-seconds='300']").click()
    expect(page.get_by_test_id("chat-timer")).to_contain_text("5m")

    # search
    page.get_by_test_id("search").fill("harness")
    expect(page.get_by_test_id("search-result")).to_have_count(1)
    page.get_by_test_id("search-result").click()
    expect(page.get_by_test_id("chat-title")).to_contain_text("Climbing club")
    page.get_by_test_id("search").fill("")

    # contact + emoji verification
    page.locator('[data-testid=conversation][data-id=c-ben]').click()
    page.get_by_test_id("chat-info").click()
    expect(page.get_by_test_id("safety-number")).to_be_visible()
    page.screenshot(path=f"{OUT}/flow-contact.png")
    page.get_by_test_id("verify-emoji").click()
    expect(page.get_by_test_id("verify-emoji-grid")).to_be_visible(timeout=4000)
    page.screenshot(path=f"{OUT}/flow-sas.png")
    page.get_by_test_id("verify-match").click()
    page.get_by_test_id("verify-close").click()
    expect(page.get_by_test_id("verified")).to_be_visible()

    # settings: devices, link
    page.get_by_test_id("open-settings").click()
    expect(page.get_by_test_id("device")).to_have_count(3)
    page.get_by_test_id("link-device").click()
    expect(page.get_by_test_id("link-code")).to_have_text("481-592-736")
    page.screenshot(path=f"{OUT}/flow-link.png")
    expect(page.get_by_test_id("link-confirm")).to_be_visible(timeout=6000)
    page.get_by_test_id("link-confirm").click()
    expect(page.get_by_test_id("link-done")).to_be_visible()
    page.get_by_test_id("dialog-close").click()
    page.get_by_test_id("theme-dark").check()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.screenshot(path=f"{OUT}/flow-settings-dark.png")

    print("errors:", errors)
    browser.close()
    print("ok")
