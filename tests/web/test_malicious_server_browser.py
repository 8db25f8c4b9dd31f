"""The browser against a malicious server (DESIGN §4-6), as the SDK is in
``tests/client/test_malicious_server_functional.py``.

The page is loaded from ``EvilProxy`` in front of a real server, so the web
app's HTTP calls and its WebSocket pass through hooks that repeat, reorder,
withhold and inject frames and rewrite the key directory. The sender is an
SDK client talking to the server directly. Every test also checks that the
honest messages arrive.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import msgspec
import pytest
from playwright.async_api import Page, expect

from taube.client import Client
from taube.crypto import IdentityKeyPair
from taube.proto import frames, http
from taube.proto.ids import ConversationId, new_message_id
from taube.testing import ServerProcess
from taube.testing.evilproxy import Connection, EvilProxy
from tests.web.conftest import PageFactory, SdkFactory
from tests.web.driver import message, open_conversation, sign_up, tid

KEYS_QUERY = "/api/v1/keys/query"
#: message texts no other text on the page contains
WORDS = ["alpha", "bravo", "charlie", "delta", "echo"]


@pytest.fixture
async def proxy(web_server: ServerProcess) -> AsyncIterator[EvilProxy]:
    async with EvilProxy(web_server.url) as evil:
        yield evil


class Proxied(ServerProcess):
    """What ``new_page`` needs of a server: its URL (here the proxy's)."""

    def __init__(self, url: str) -> None:
        self.url = url


def device_of(proxy: EvilProxy, user: str) -> str:
    for _conn, frame in proxy.server_frames:
        if isinstance(frame, frames.Welcome) and frame.user == user:
            return frame.device
    raise AssertionError(f"{user} never connected through the proxy")


def is_msg(frame: frames.ServerFrame) -> bool:
    return isinstance(frame, frames.Message) and frame.body is not None


async def chat_with_browser(
    proxy: EvilProxy, new_page: PageFactory, sdk: SdkFactory
) -> tuple[Page, str, Client, ConversationId]:
    """A browser (through the proxy) in a direct chat with an SDK user."""
    page = await new_page(Proxied(proxy.url))
    address, _ = await sign_up(page, "bob")
    alice = await sdk("alice")
    chat = await alice.start_chat(address)
    await alice.send_text(chat, WORDS[0])
    await open_conversation(page, "Alice")
    await expect(message(page, WORDS[0])).to_have_count(1)
    return page, device_of(proxy, address), alice, chat


async def test_replayed_and_reposted_messages_are_shown_once(
    proxy: EvilProxy, new_page: PageFactory, sdk: SdkFactory
) -> None:
    page, device, alice, chat = await chat_with_browser(proxy, new_page, sdk)
    proxy.on_server_frame(lambda _conn, f: [f, f] if is_msg(f) else None)
    for i in range(1, 4):
        await alice.send_text(chat, WORDS[i])
    await expect(message(page, WORDS[3])).to_have_count(1)
    old = [f for f in proxy.sent_to(device, frames.Message) if is_msg(f)]
    # again after a reconnect, and again under new ids (Megolm replays)
    await proxy.disconnect(device)
    conn = await proxy.connection(device)
    for frame in old:
        await conn.send(frame)
        await conn.send(msgspec.structs.replace(frame, id=new_message_id(), seq=frame.seq + 100))
    await alice.send_text(chat, WORDS[4])  # frames are handled in order: a barrier
    await expect(message(page, WORDS[4])).to_have_count(1)
    for i in range(5):
        await expect(message(page, WORDS[i])).to_have_count(1)
    await expect(tid(page, "message")).to_have_count(5)
    # after a reload, too
    await page.reload()
    await open_conversation(page, "Alice")
    await expect(tid(page, "message")).to_have_count(5)


async def test_withheld_message_leaves_a_missing_marker(
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
    for i in range(1, 4):
        await alice.send_text(chat, WORDS[i])
    await expect(message(page, WORDS[3])).to_have_count(1)
    await expect(message(page, WORDS[1])).to_have_count(0)
    missing = page.locator('[data-testid="notice"][data-kind="missing"]')
    await expect(missing).to_have_count(1)


async def test_swapped_identity_key_is_shown_in_the_chat(
    proxy: EvilProxy, new_page: PageFactory, sdk: SdkFactory
) -> None:
    page, device, alice, chat = await chat_with_browser(proxy, new_page, sdk)
    impostor = IdentityKeyPair.generate()

    def forged(found: http.KeysResponse) -> http.KeysResponse:
        return http.KeysResponse(
            users=[
                http.UserKeys(
                    user=e.user,
                    identity=impostor.identity_key(e.user),
                    devices=[impostor.certify(d) for d in e.devices],
                )
                if e.user == alice.user
                else e
                for e in found.users
            ]
        )

    proxy.rewrite(KEYS_QUERY, http.KeysResponse, forged)
    await proxy.inject(frames.KeysChanged(seq=0, user=alice.user), device=device)
    changed = page.locator('[data-testid="notice"][data-kind="key-changed"]')
    await expect(changed).to_have_count(1)
    # the real Alice's messages no longer verify under the forged key's devices
    await alice.send_text(chat, "after the swap")
    await expect(message(page, "after the swap")).to_have_count(0)


async def test_plaintext_and_forged_frames_are_not_shown(
    proxy: EvilProxy, new_page: PageFactory, sdk: SdkFactory
) -> None:
    page, device, alice, chat = await chat_with_browser(proxy, new_page, sdk)
    plain = b'{"type":"text","content":{"body":"injected by the server"}}'
    await proxy.inject(
        frames.Message(
            conversation=chat,
            seq=10**6,
            id=new_message_id(),
            sender=alice.user,
            sender_device=alice.device,
            ts=0,
            body=plain,
        ),
        device=device,
    )
    await proxy.inject(
        frames.Message(
            conversation=chat,
            seq=10**6 + 1,
            id=new_message_id(),
            sender=alice.user,
            sender_device=alice.device,
            ts=0,
            body=base64.b64encode(b"not json at all"),
        ),
        device=device,
    )
    await alice.send_text(chat, "the honest one")
    await expect(message(page, "the honest one")).to_have_count(1)
    await expect(message(page, "injected by the server")).to_have_count(0)
    await expect(tid(page, "message")).to_have_count(2)
