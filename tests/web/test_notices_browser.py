"""Notices that stay (issue 16), in the browser: a key-change warning and a
missing-messages marker the lying proxy made are still in the chat, in their
places and once, after the page is reloaded. The page is loaded from
``EvilProxy`` as in ``test_malicious_server_browser.py``."""

from __future__ import annotations

from playwright.async_api import expect

from taube.crypto import IdentityKeyPair
from taube.proto import frames, http
from taube.testing.evilproxy import Connection, EvilProxy
from tests.web.conftest import ARTIFACTS, PageFactory, SdkFactory
from tests.web.driver import message, open_conversation, sign_up, tid
from tests.web.test_malicious_server_browser import (
    KEYS_QUERY,
    WORDS,
    Proxied,
    chat_with_browser,
    device_of,
    is_msg,
    proxy,
)

__all__ = ["proxy"]  # the fixture

NOTICE = '[data-testid="notice"][data-kind="{}"]'


async def test_key_change_warning_stays_after_a_reload(
    proxy: EvilProxy, new_page: PageFactory, sdk: SdkFactory
) -> None:
    """Carol's identity key is swapped in a group Alice made (its chain,
    signed by Alice, still verifies after the reload)."""
    page = await new_page(Proxied(proxy.url))
    address, _ = await sign_up(page, "bob")
    alice, carol = await sdk("alice"), await sdk("carol")
    group = await alice.create_group([address, carol.user])
    await alice.rename(group, "Safety club")
    await alice.send_text(group, WORDS[0])
    await open_conversation(page, "Safety club")
    await expect(message(page, WORDS[0])).to_have_count(1)
    impostor = IdentityKeyPair.generate()

    def forged(found: http.KeysResponse) -> http.KeysResponse:
        return http.KeysResponse(
            users=[
                http.UserKeys(
                    user=e.user,
                    identity=impostor.identity_key(e.user),
                    devices=[impostor.certify(d) for d in e.devices],
                )
                if e.user == carol.user
                else e
                for e in found.users
            ]
        )

    proxy.rewrite(KEYS_QUERY, http.KeysResponse, forged)
    device = device_of(proxy, address)
    await proxy.inject(frames.KeysChanged(seq=0, user=carol.user), device=device)
    changed = page.locator(NOTICE.format("key-changed"))
    await expect(changed).to_have_count(1)
    await expect(changed).to_contain_text("safety number")

    await page.reload()
    await open_conversation(page, "Safety club")
    await expect(message(page, WORDS[0])).to_have_count(1)
    await expect(changed).to_have_count(1)  # kept, and not told twice
    await expect(changed).to_contain_text("safety number")
    # in its place: after the message that came before it
    lines = tid(page, "message").or_(changed)
    await expect(lines).to_have_count(2)
    await expect(lines.first).to_contain_text(WORDS[0])
    await expect(lines.last).to_have_attribute("data-kind", "key-changed")
    await page.screenshot(path=ARTIFACTS / "notice-key-changed-1280.png")
    await page.set_viewport_size({"width": 360, "height": 740})
    await expect(changed).to_be_in_viewport()
    await page.screenshot(path=ARTIFACTS / "notice-key-changed-360.png")


async def test_missing_marker_stays_after_a_reload(
    proxy: EvilProxy, new_page: PageFactory, sdk: SdkFactory
) -> None:
    page, _device, alice, chat = await chat_with_browser(proxy, new_page, sdk)
    withheld: list[str] = []

    def withhold(_conn: Connection, frame: frames.ServerFrame) -> list[frames.ServerFrame] | None:
        if is_msg(frame) and isinstance(frame, frames.Message) and not withheld:
            withheld.append(frame.id)
            return []
        return None

    proxy.on_server_frame(withhold)
    for i in range(1, 3):
        await alice.send_text(chat, WORDS[i])
    await expect(message(page, WORDS[2])).to_have_count(1)
    missing = page.locator(NOTICE.format("missing"))
    await expect(missing).to_have_count(1)

    await page.reload()
    await open_conversation(page, "Alice")
    await expect(message(page, WORDS[2])).to_have_count(1)
    await expect(missing).to_have_count(1)
    await expect(message(page, WORDS[1])).to_have_count(0)
    # right before the message that revealed the gap
    lines = tid(page, "message").or_(missing)
    await expect(lines).to_have_count(3)
    await expect(lines.nth(1)).to_have_attribute("data-kind", "missing")
    await expect(lines.nth(2)).to_contain_text(WORDS[2])
