"""Screenshots for people to look at: nothing is compared pixel by pixel.

The chat list and a chat with a photo on a phone (360 x 740) and a desktop
(1440 x 900), light and dark: ``{scene}-{width}x{height}-{theme}.png``. Then
the screens the user guide shows, on the phone: ``guide-{screen}.png``.
Everything lands in ``test-artifacts/web/``; the tests only make sure each
shot shows what it should (the five chats, the photo loaded, the dialog open).
"""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Literal

import pytest
from PIL import Image, ImageDraw, ImageFilter
from playwright.async_api import Page, expect

from taube.client import Client
from taube.testing import ServerProcess
from tests.web.conftest import ARTIFACTS, PASSWORD, PageFactory, SdkFactory
from tests.web.driver import (
    SENT,
    NetworkSwitch,
    code_group,
    create_group,
    message,
    open_conversation,
    react,
    send_text,
    tid,
    wait_offline,
    wait_online,
)

PHONE = (360, 740)
DESKTOP = (1440, 900)
THEMES: list[Literal["light", "dark"]] = ["light", "dark"]
CHATS = ["Alice", "Climbing crew", "David", "Erin", "Frank"]
PHOTO_CAPTION = "The view this morning"


def landscape(path: Path, size: tuple[int, int] = (1200, 800), seed: int = 7) -> Path:
    """A made-up photo: sky, sun, two mountain ranges and a lake."""
    width, height = size
    rng = random.Random(seed)
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / height
        sky = (int(250 - 120 * t), int(190 - 60 * t), int(140 + 80 * t))
        draw.line([(0, y), (width, y)], fill=sky)
    draw.ellipse([width * 0.62, height * 0.18, width * 0.74, height * 0.36], fill=(255, 236, 180))
    for colour, base, jag in (((96, 110, 150), 0.55, 0.25), ((48, 66, 92), 0.68, 0.18)):
        points = [(0.0, float(height))]
        for x in range(0, width + 60, 60):
            points.append((float(x), height * (base - rng.random() * jag)))
        points.append((float(width), float(height)))
        draw.polygon(points, fill=colour)
    draw.rectangle([0, height * 0.8, width, height], fill=(70, 120, 150))
    out = io.BytesIO()
    image.filter(ImageFilter.GaussianBlur(1.2)).save(out, "JPEG", quality=88)
    path.write_bytes(out.getvalue())
    return path


def portrait(path: Path, colour: tuple[int, int, int]) -> Path:
    """A made-up profile picture: a head and shoulders on ``colour``."""
    image = Image.new("RGB", (256, 256), colour)
    draw = ImageDraw.Draw(image)
    draw.ellipse([78, 40, 178, 140], fill=(250, 220, 190))
    draw.ellipse([40, 150, 216, 330], fill=(250, 220, 190))
    image.save(path, "PNG")
    return path


@pytest.fixture
async def people(tmp_path: Path, web_server: ServerProcess) -> AsyncIterator[SdkFactory]:
    """``await people("alice")``: an SDK user ``alice@example.org`` shown as
    "Alice" (the conftest's ``sdk``, with addresses fit for a picture: every
    test has a server of its own)."""
    async with AsyncExitStack() as stack:

        async def make(name: str) -> Client:
            client = await stack.enter_async_context(Client(tmp_path / f"people-{name}"))
            await client.register(web_server.url, f"{name}@example.org", PASSWORD)
            await client.sync()
            await client.set_profile(name.capitalize())
            return client

        yield make


async def sign_up_as(page: Page, name: str, guide: bool = False) -> str:
    """Sign up through the screens (as ``driver.sign_up``) as
    ``name@example.org``, with the display name ``Name``; ``guide`` also
    shoots the form and the recovery code."""
    address = f"{name}@example.org"
    await tid(page, "tab-signup").click()
    await tid(page, "signup-name").fill(name.capitalize())
    await tid(page, "signup-address").fill(address)
    await tid(page, "signup-password").fill(PASSWORD)
    await tid(page, "signup-device").fill("Laptop")
    if guide:
        await shoot(page, "guide-signup")
    await tid(page, "signup-submit").click()
    await expect(tid(page, "recovery-code")).to_be_visible()
    code = await tid(page, "recovery-code").inner_text()
    await tid(page, "recovery-typeback").fill(code_group(code))
    if guide:
        await shoot(page, "guide-recovery-code")
    await tid(page, "recovery-confirm").click()
    await expect(tid(page, "new-chat")).to_be_visible()
    return address


@asynccontextmanager
async def furnish(page: Page, people: SdkFactory, directory: Path) -> AsyncIterator[Client]:
    """Five chats for the browser on ``page``: a photo from Alice (yielded),
    a group, and three more with a line or two each."""
    bob = await sign_up_as(page, "bob")
    alice, carol, david, erin, frank = [
        await people(name) for name in ("alice", "carol", "david", "erin", "frank")
    ]
    await alice.set_profile("Alice", avatar=portrait(directory / "alice.png", (120, 170, 210)))

    crew = await carol.create_group([bob, david.user])
    await carol.rename(crew, "Climbing crew")
    await carol.send_text(crew, "Saturday 9:00 at the gym?")
    await david.send_text(crew, "I'm in 👍")
    await frank.send_text(await frank.start_chat(bob), "Thanks for dinner yesterday!")
    await open_conversation(page, "Frank")
    await send_text(page, "Anytime! Next time at your place 🍝")
    await page.go_back()
    await erin.send_text(
        await erin.start_chat(bob),
        "Reminder: the plumber comes between 8 and 10 tomorrow morning, "
        "could you leave the key under the mat?",
    )
    await david.send_text(await david.start_chat(bob), "Did you get the tickets?")

    hut = await alice.start_chat(bob)
    await alice.send_text(hut, "Hi Bob! We made it to the hut 🏔️")
    await alice.send_file(hut, landscape(directory / "view.jpg"), caption=PHOTO_CAPTION)
    await open_conversation(page, "Alice")
    await expect(tid(message(page, PHOTO_CAPTION), "attachment-image")).to_have_attribute(
        "data-loaded", "true"
    )
    await react(page, PHOTO_CAPTION, "❤️")
    await send_text(page, "Wow, gorgeous! How cold was it?")
    await expect(message(page, "Wow, gorgeous")).to_have_attribute("data-status", SENT)
    await alice.send_text(hut, "About -5 °C, but the sun makes up for it ☀️")
    await expect(message(page, "the sun makes up for it")).to_be_visible()
    alice_item = tid(page, "conversation").filter(has_text="Alice")
    await expect(alice_item).to_have_attribute("data-unread", "0")  # read, as it was open
    await page.go_back()
    await expect(tid(page, "conversation")).to_have_count(len(CHATS))
    yield alice


async def shoot(page: Page, name: str) -> Path:
    size = page.viewport_size
    assert size is not None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.mouse.move(size["width"] - 1, size["height"] - 1)  # no hover effects
    await page.wait_for_timeout(300)  # transitions settle
    await page.screenshot(path=path)
    return path


async def test_screenshots_of_the_chat_list_and_a_chat_with_a_photo(
    web_server: ServerProcess, new_page: PageFactory, people: SdkFactory, tmp_path: Path
) -> None:
    page = await new_page(web_server, viewport=PHONE)
    shots: list[Path] = []
    async with furnish(page, people, tmp_path):
        for theme in THEMES:
            await page.emulate_media(color_scheme=theme)
            for width, height in (PHONE, DESKTOP):
                size = f"{width}x{height}-{theme}"
                await page.set_viewport_size({"width": width, "height": height})
                await expect(tid(page, "chat")).to_have_count(0)
                await expect(tid(page, "conversation")).to_have_count(len(CHATS))
                titles = await tid(page, "conversation-title").all_inner_texts()
                assert sorted(titles) == sorted(CHATS)
                shots.append(await shoot(page, f"chat-list-{size}"))

                await open_conversation(page, "Alice")
                photo = tid(message(page, PHOTO_CAPTION), "attachment-image")
                await expect(photo).to_have_attribute("data-loaded", "true")
                await expect(photo).to_be_in_viewport()
                shots.append(await shoot(page, f"chat-photo-{size}"))
                await page.go_back()
    assert len(shots) == len(THEMES) * 2 * 2
    assert all(path.stat().st_size > 0 for path in shots)


async def test_screenshots_for_the_user_guide(
    web_server: ServerProcess, new_page: PageFactory, people: SdkFactory, tmp_path: Path
) -> None:
    page = await new_page(web_server, viewport=PHONE)
    await page.emulate_media(color_scheme="light")
    async with NetworkSwitch(page.context) as network:
        bob = await sign_up_as(page, "bob", guide=True)
        alice, carol = await people("alice"), await people("carol")
        for contact, line in (
            (carol, "Did you finish the book?"),
            (alice, "Send me a photo from the trip?"),
        ):
            await contact.send_text(await contact.start_chat(bob), line)
        await expect(tid(page, "conversation")).to_have_count(2)

        # a group Bob owns: roles and member management in its info panel
        await create_group(page, "Book club", [alice.user, carol.user])
        await send_text(page, "Next book: “The Left Hand of Darkness”?")
        await tid(page, "chat-info").click()
        await expect(tid(page, "member")).to_have_count(3)
        await shoot(page, "guide-group-info")
        await tid(page, "panel-close").click()

        # the message menu: reactions, reply, copy, edit, delete
        bubble = message(page, "Next book").first
        await bubble.hover()
        await tid(bubble, "message-menu").click()
        await expect(tid(page, "menu-delete")).to_be_visible()
        await shoot(page, "guide-message-menu")
        await page.keyboard.press("Escape")
        await expect(tid(page, "menu-delete")).to_have_count(0)
        await page.go_back()

        # the photo editor before a photo is sent
        await open_conversation(page, "Alice")
        await tid(page, "file-input").set_input_files(str(landscape(tmp_path / "trip.jpg")))
        await page.locator('[data-testid="photo-filter"][data-filter="warm"]').click()
        await tid(page, "photo-caption").fill("Sunrise from the hut")
        await shoot(page, "guide-photo-editor")
        await tid(page, "photo-send").click()
        await expect(message(page, "Sunrise from the hut")).to_have_attribute(
            "data-status", SENT, timeout=30_000
        )

        # a message written offline waits with a clock
        await network.cut()
        await wait_offline(page)
        await send_text(page, "I'll be back in the valley tomorrow")
        await expect(message(page, "back in the valley")).to_have_attribute(
            "data-status", "pending"
        )
        await shoot(page, "guide-offline")
        await network.restore()
        await wait_online(page)

        # safety number and QR code of a contact
        await tid(page, "chat-info").click()
        await expect(tid(page, "safety-number")).to_be_visible()
        await tid(page, "verification").evaluate("(e) => e.scrollIntoView()")
        await shoot(page, "guide-safety-number")
        await tid(page, "panel-close").click()
        await page.go_back()

        # settings: profile, theme, notifications, devices
        await tid(page, "open-settings").click()
        await expect(tid(page, "device")).to_have_count(1)
        await shoot(page, "guide-settings")
