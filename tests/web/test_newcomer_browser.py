"""A newcomer's first five minutes (issue 20), in Chromium against the real
server: names, an invite link into a verified chat, text and photos both
ways, back in with the recovery code, refused invites, presence settings.

The steps a newcomer takes from opening the invite link to the first message
are counted here (``Steps``); docs/user-guide.md gives the number.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from playwright.async_api import Locator, Page, expect

from taube.client import Client, VerificationDone
from taube.testing import ServerProcess
from tests.web.conftest import ARTIFACTS, PASSWORD, STEP_TIMEOUT_MS, PageFactory, SdkFactory
from tests.web.driver import (
    code_group,
    log_in,
    message,
    new_address,
    open_conversation,
    received,
    send_text,
    tid,
)
from tests.web.test_interop_sdk import png, send_image

#: what the steps count may be at most (the issue's aim)
MOST_STEPS = 5
PHONE = (360, 740)


async def shoot(page: Page, name: str) -> None:
    """A screenshot for docs/user-guide.md (copied from test-artifacts/web)."""
    size = page.viewport_size
    assert size is not None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.mouse.move(size["width"] - 1, size["height"] - 1)  # no hover effects
    await page.wait_for_timeout(300)  # transitions settle
    await page.screenshot(path=ARTIFACTS / f"newcomer-{name}-{size['width']}.png")


class Steps:
    """Counts what the newcomer does: clicks and fields typed into, other
    than the message and the password."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    def __call__(self, what: str) -> None:
        self.taken.append(what)


async def width_of(element: Locator) -> float:
    box = await element.bounding_box()
    assert box is not None
    return box["width"]


async def invite_verified(client: Client, timeout: float = 20.0) -> VerificationDone:
    async with asyncio.timeout(timeout):
        async for event in client.events():
            if isinstance(event, VerificationDone) and event.transaction.startswith("invite:"):
                return event
    raise AssertionError("no verification by invite")


async def read_events(client: Client) -> None:
    """Let the SDK handle what arrives (it does while its events are read)."""
    async for _ in client.events():
        pass


async def sign_up_named(page: Page, name: str, *, shot: bool = False) -> tuple[str, str]:
    """Sign up with a display name and the address suggested from it."""
    await tid(page, "signup-name").fill(name)
    await expect(tid(page, "signup-address")).to_have_value(re.compile(r"@example\.org$"))
    address = await tid(page, "signup-address").input_value()
    await tid(page, "signup-password").fill(PASSWORD)
    await tid(page, "signup-submit").click()
    code = (await tid(page, "recovery-code").inner_text(timeout=STEP_TIMEOUT_MS)).strip()
    await tid(page, "recovery-typeback").fill(code_group(code))
    if shot:
        await shoot(page, "recovery")
    await tid(page, "recovery-confirm").click()
    return address, code


async def make_invite(page: Page) -> str:
    await tid(page, "invite-someone").click()
    link = tid(page, "invite-link")
    await expect(link).to_have_value(re.compile(r"/#/invite/"))
    await expect(tid(page, "invite-dialog").locator("img.qr")).to_be_visible()
    url = await link.input_value()
    await shoot(page, "invite")
    await tid(page, "invite-done").click()
    return url


async def presence_shown(page: Page, title: str) -> str | None:
    """Open the chat afresh (the header asks for presence when it opens)."""
    await page.reload()
    await open_conversation(page, title)
    shown = tid(page, "chat-presence")
    try:
        await expect(shown).to_be_visible(timeout=3000)
    except AssertionError:
        return None
    return await shown.inner_text()


async def set_presence(page: Page, value: str) -> None:
    await tid(page, "open-settings").click()
    option = tid(page, f"presence-{value}")
    await option.check()
    await expect(option).to_be_checked()
    await tid(page, "panel-back").click()


async def test_newcomer_from_invite_link_to_a_verified_chat(
    web_server: ServerProcess, new_page: PageFactory, tmp_path: Path
) -> None:
    ana = await new_page(web_server)
    await expect(tid(ana, "signup-name")).to_be_visible()
    ana_address, _ = await sign_up_named(ana, "Ana Lima")
    # an empty list says how to start
    await expect(tid(ana, "empty-list")).to_contain_text("Invite someone")
    await shoot(ana, "empty")
    url = await make_invite(ana)
    assert url.startswith(web_server.url + "/#/invite/")
    assert "/Ana%20Lima" in url

    # the newcomer opens the link in a browser of their own
    steps = Steps()
    bo = await new_page(web_server)
    await bo.goto(url)
    await expect(tid(bo, "invite-banner")).to_contain_text("Ana Lima")
    await expect(tid(bo, "invite-banner")).to_contain_text(ana_address)
    assert "#/invite/" not in bo.url  # the secret leaves the address bar
    await bo.reload()  # and the invite stays with the tab
    await expect(tid(bo, "invite-banner")).to_contain_text("Ana Lima")
    await tid(bo, "signup-name").fill("Bo Berg")
    steps("type their name (the address is suggested from it)")
    await expect(tid(bo, "signup-address")).to_have_value(re.compile(r"^bo\.berg@example\.org$"))
    bo_address = await tid(bo, "signup-address").input_value()
    await tid(bo, "signup-password").fill(PASSWORD)  # the password: not counted
    await shoot(bo, "invited")
    await tid(bo, "signup-submit").click()
    steps("create the account")
    bo_code = (await tid(bo, "recovery-code").inner_text(timeout=STEP_TIMEOUT_MS)).strip()
    await expect(tid(bo, "recovery-confirm")).to_be_disabled()
    async with bo.expect_download() as download:
        await tid(bo, "recovery-download").click()
    steps("download the recovery code")
    saved = await (await download.value).path()
    assert bo_code in Path(saved).read_text()
    await tid(bo, "recovery-confirm").click()
    steps("continue")
    # the chat with Ana is open, by name, verified
    await expect(tid(bo, "chat-title")).to_have_text("Ana Lima")
    await expect(tid(bo, "chat-subtitle")).to_have_text(ana_address)
    await expect(tid(bo, "chat-verified")).to_be_visible()
    await send_text(bo, "Hi Ana, it's Bo")  # the message: not counted
    await shoot(bo, "chat")
    assert len(steps.taken) <= MOST_STEPS, steps.taken
    print(f"newcomer steps: {len(steps.taken)}: {steps.taken}")

    # Ana: the chat shows Bo by name, verified by the invite's proof
    await open_conversation(ana, "Bo Berg")
    await expect(message(ana, "Hi Ana, it's Bo")).to_be_visible()
    await expect(tid(ana, "chat-verified")).to_be_visible()
    await expect(tid(ana, "chat-subtitle")).to_have_text(bo_address)
    await send_text(ana, "Welcome, Bo!")
    await expect(message(bo, "Welcome, Bo!")).to_be_visible()
    # photos both ways: a small one at its natural size, a large one scaled down
    png(tmp_path / "small.png", (200, 40, 40), (120, 80))
    png(tmp_path / "large.png", (40, 40, 200), (1600, 1200))
    await send_image(ana, tmp_path / "small.png", "a small red one")
    await send_image(bo, tmp_path / "large.png", "a large blue one")
    small = message(bo, "a small red one").locator('[data-testid="attachment-image"]')
    await expect(small).to_have_attribute("data-loaded", "true", timeout=30_000)
    assert await width_of(small) == 120
    large = message(ana, "a large blue one").locator('[data-testid="attachment-image"]')
    await expect(large).to_have_attribute("data-loaded", "true", timeout=30_000)
    assert 100 < await width_of(large) <= 340
    # the viewer: full size with zoom, previous / next, save
    await shoot(ana, "photos")
    await large.click()
    viewer = tid(ana, "lightbox")
    await expect(tid(viewer, "viewer-position")).to_contain_text("2 of 2")
    await shoot(ana, "viewer")
    await tid(viewer, "viewer-zoom-in").click()
    await expect(tid(viewer, "viewer-image")).to_have_attribute("data-zoom", "1")
    assert await width_of(tid(viewer, "viewer-image")) == 1600
    await tid(viewer, "viewer-prev").click()
    await expect(tid(viewer, "viewer-position")).to_contain_text("1 of 2")
    async with ana.expect_download() as photo:
        await tid(viewer, "viewer-save").click()
    assert (await photo.value).suggested_filename == "small.png"
    await tid(viewer, "dialog-close").click()

    # presence: contacts (the default) see it; nobody; everyone
    assert await presence_shown(bo, "Ana Lima") == "online"
    await set_presence(ana, "nobody")
    assert await presence_shown(bo, "Ana Lima") is None
    await set_presence(ana, "everyone")
    assert await presence_shown(bo, "Ana Lima") == "online"

    # Bo on a new browser with the recovery code: the history is there
    again = await new_page(web_server)
    await log_in(again, bo_address, bo_code, device="Bo's laptop")
    await open_conversation(again, "Ana Lima")
    await expect(message(again, "Welcome, Bo!")).to_be_visible()
    await expect(message(again, "a small red one")).to_be_visible()

    # a used link, and a link whose secret was changed, are refused plainly
    stranger = await new_page(web_server)
    await stranger.goto(url)
    await expect(tid(stranger, "invite-error")).to_contain_text("already used")
    forged = re.sub(r"/([A-Za-z0-9_-]{22})/Ana", "/" + "A" * 22 + "/Ana", url)
    assert forged != url
    await stranger.goto(forged)
    await expect(tid(stranger, "invite-error")).to_contain_text("not valid")
    # a link whose fingerprint is not Ana's key: refused before it is used
    fresh = await make_invite(ana)
    parts = fresh.split("/")
    parts[-3] = "B" * 22
    await again.goto("/".join(parts))
    await expect(tid(again, "invite-refused-reason")).to_contain_text("may be forged")
    await again.get_by_role("button", name="OK").click()
    # the real link, opened by someone with an account: the chat opens
    await again.goto(fresh)
    await expect(tid(again, "chat-title")).to_have_text("Ana Lima")
    # a revoked link
    await tid(ana, "invite-someone").click()
    await expect(tid(ana, "invite-link")).to_have_value(re.compile(r"/#/invite/"))
    revoked = await tid(ana, "invite-link").input_value()
    await tid(ana, "invite-revoke").click()
    await expect(tid(ana, "invite-status")).to_contain_text("Revoked")
    await tid(ana, "invite-done").click()
    await stranger.goto(revoked)
    await expect(tid(stranger, "invite-error")).to_contain_text("revoked")


async def test_an_sdk_invite_opened_in_the_browser(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory
) -> None:
    """The invite protocol between the two clients: the SDK invites, the
    web app joins; both end verified."""
    carla = await sdk("carla")
    link = await carla.create_invite("Carla")
    page = await new_page(web_server, viewport=PHONE)
    await page.goto(link.url)
    await expect(tid(page, "invite-banner")).to_contain_text("Carla")
    await tid(page, "signup-name").fill("Dev")
    await shoot(page, "invited")
    await sign_up_named(page, "Dev", shot=True)
    await expect(tid(page, "chat-verified")).to_be_visible()
    # the SDK handles what arrives while its events are read: the proof, the
    # new chat (to which it sends its profile, the name the web app shows)
    done = await invite_verified(carla)
    reading = asyncio.create_task(read_events(carla))
    await expect(tid(page, "chat-title")).to_have_text("Carla")
    reading.cancel()
    await shoot(page, "chat")
    assert done.verified
    pinned = carla.keys.pinned(done.user)
    assert pinned is not None
    assert pinned[1] is True
    assert done.user.startswith("dev@")


async def test_finding_people_names_and_ways_back_in(
    web_server: ServerProcess, new_page: PageFactory, tmp_path: Path
) -> None:
    """The directory is opt-in, a contact can be renamed here, the tab
    counts unread messages; a wrong recovery code changes nothing, a new
    code replaces the old one, and starting over keeps the address with new
    keys (the contact sees the key change)."""
    ana = await new_page(web_server)
    png(tmp_path / "ana.png", (220, 120, 30), (96, 96))
    await tid(ana, "signup-picture").set_input_files(str(tmp_path / "ana.png"))
    await sign_up_named(ana, "Ana Lima")
    bo = await new_page(web_server)
    bo_address, bo_code = await sign_up_named(bo, "Bo Berg")

    # strangers are not found by name until they opt in
    await tid(ana, "new-chat").click()
    await tid(ana, "new-chat-address").fill("Bo Ber")
    await ana.wait_for_timeout(1000)  # the search waits for typing to pause
    await expect(tid(ana, "new-chat-suggestion")).to_have_count(0)
    await tid(ana, "dialog-close").click()
    await tid(bo, "open-settings").click()
    await expect(tid(bo, "presence-contacts")).to_be_checked()
    await expect(tid(bo, "settings-findable")).not_to_be_checked()
    await bo.get_by_text("Others on this server can find me by name").click()
    await expect(tid(bo, "settings-findable")).to_be_checked()
    await expect(tid(bo, "settings-findable-name")).to_have_value("Bo Berg")
    await tid(bo, "panel-back").click()
    await tid(ana, "new-chat").click()
    await tid(ana, "new-chat-address").fill("Bo Ber")
    found = tid(ana, "new-chat-suggestion")
    await expect(found).to_have_count(1)
    await expect(found).to_contain_text(bo_address)
    await found.click()
    # the address first, then Bo's name once his profile is in
    await expect(tid(ana, "chat-title")).to_have_text(
        re.compile(f"^({re.escape(bo_address)}|Bo Berg)$")
    )

    # Bo gets the chat with Ana's name and picture; Ana's tab counts unread
    await open_conversation(bo, "Ana Lima")
    await expect(bo.locator(".chat__header img")).to_be_visible()
    await ana.evaluate("history.back()")  # Ana leaves the chat
    await expect(tid(ana, "chat")).to_have_count(0)
    await send_text(bo, "Found you by name")
    await expect(ana).to_have_title("(1) taube")
    await open_conversation(ana, "Bo Berg")
    await expect(ana).to_have_title("taube")

    # a name of Ana's own for Bo, on her device only
    await ana.locator(".chat__who").click()
    await tid(ana, "contact-rename").click()
    await tid(ana, "contact-rename-input").fill("Bobby")
    await tid(ana, "contact-rename-save").click()
    await expect(tid(ana, "chat-title")).to_have_text("Bobby")
    await expect(tid(ana, "conversation-title")).to_have_text("Bobby")
    await expect(tid(bo, "chat-title")).to_have_text("Ana Lima")

    # a new recovery code: the old one stops working, and a wrong one changes nothing
    await tid(bo, "open-settings").click()
    await tid(bo, "recovery-renew").click()
    await bo.get_by_role("button", name="Make a new code").click()
    renewed = tid(bo, "recovery-renewed")
    new_code = (await tid(renewed, "recovery-code").inner_text(timeout=STEP_TIMEOUT_MS)).strip()
    assert new_code != bo_code
    await tid(renewed, "recovery-typeback").fill(code_group(new_code))
    await tid(renewed, "recovery-confirm").click()
    await expect(renewed).to_have_count(0)
    await expect(tid(bo, "device")).to_have_count(1)
    await tid(bo, "panel-back").click()
    laptop = await new_page(web_server)
    await tid(laptop, "tab-login").click()
    await tid(laptop, "login-address").fill(bo_address)
    await tid(laptop, "login-password").fill(PASSWORD)
    await tid(laptop, "login-method-recovery").click()
    await tid(laptop, "login-code").fill(bo_code)
    await tid(laptop, "login-submit").click()
    await expect(tid(laptop, "login-error")).to_contain_text(
        "That recovery code is not right. Nothing was changed", timeout=STEP_TIMEOUT_MS
    )
    await tid(bo, "open-settings").click()
    await expect(tid(bo, "device")).to_have_count(1)  # no device was left behind
    await tid(bo, "panel-back").click()

    # every device and code lost: start over, same address, new keys
    await tid(laptop, "start-over").click()
    await tid(laptop, "start-over-address").fill(bo_address)
    await tid(laptop, "start-over-password").fill(PASSWORD)
    await expect(tid(laptop, "start-over-submit")).to_be_disabled()
    await tid(laptop, "start-over-understood").check()
    await tid(laptop, "start-over-submit").click()
    fresh = (await tid(laptop, "recovery-code").inner_text(timeout=STEP_TIMEOUT_MS)).strip()
    await tid(laptop, "recovery-typeback").fill(code_group(fresh))
    await tid(laptop, "recovery-confirm").click()
    await expect(tid(laptop, "new-chat")).to_be_visible()
    # the old browser was signed out; Ana's chat says Bo's keys changed
    await expect(tid(ana, "notice").and_(ana.locator('[data-kind="key-changed"]'))).to_be_visible(
        timeout=STEP_TIMEOUT_MS
    )


async def test_recovery_login_gets_the_history_from_an_sdk_device(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory, tmp_path: Path
) -> None:
    """The user's SDK device answers a browser that logged in with the
    recovery code with its history (taube.history.request / grant)."""
    friend = await sdk("friend")
    async with Client(tmp_path / "erin") as erin:
        address = new_address("erin")
        code = await erin.register(web_server.url, address, PASSWORD)
        await erin.sync()
        chat = await erin.start_chat(friend.user)
        await erin.send_text(chat, "said before the browser came")
        await received(friend, "said before the browser came")
        reading = asyncio.create_task(read_events(erin))
        try:
            page = await new_page(web_server)
            await log_in(page, address, code, device="Erin's browser")
            await open_conversation(page, friend.user)  # (the SDK shares no profile here)
            await expect(message(page, "said before the browser came")).to_be_visible()
        finally:
            reading.cancel()
