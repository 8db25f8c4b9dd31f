"""QR codes scanned with the camera: linking a new browser, and verifying
a contact.

The scanning browser's camera is Chromium's fake capture device playing a
Y4M video made from a screenshot of the QR code on the other device's
screen: the web app decodes the frames itself (jsQR).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from PIL import Image
from playwright.async_api import Browser, async_playwright, expect

from taube.testing import ServerProcess
from tests.web.conftest import CHROMIUM, PASSWORD, STEP_TIMEOUT_MS, PageFactory, SdkFactory
from tests.web.driver import sign_up, start_chat, tid


def y4m(picture: bytes, path: Path, size: tuple[int, int] = (640, 480)) -> None:
    """A one-frame YUV4MPEG2 video (4:2:0) of ``picture``, centred on white."""
    frame = Image.new("RGB", size, "white")
    qr = Image.open(io.BytesIO(picture)).convert("RGB")
    qr.thumbnail((size[1] - 40, size[1] - 40))
    frame.paste(qr, ((size[0] - qr.width) // 2, (size[1] - qr.height) // 2))
    luma, blue, red = frame.convert("YCbCr").split()
    half = (size[0] // 2, size[1] // 2)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{size[0]} H{size[1]} F10:1 Ip A1:1 C420jpeg\n".encode())
        out.write(b"FRAME\n")
        out.write(luma.tobytes())
        out.write(blue.resize(half).tobytes())
        out.write(red.resize(half).tobytes())


@asynccontextmanager
async def browser_with_camera(video: Path) -> AsyncIterator[Browser]:
    """A browser whose camera shows ``video``."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={video}",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


async def test_new_browser_scans_the_link_code(
    web_server: ServerProcess, new_page: PageFactory, tmp_path: Path
) -> None:
    first = await new_page(web_server)
    address, _ = await sign_up(first, "quinn")
    await tid(first, "open-settings").click()
    await tid(first, "link-device").click()
    code = (await tid(first, "link-code").inner_text()).strip()
    video = tmp_path / "camera.y4m"
    y4m(await tid(first, "qr").screenshot(), video)

    async with browser_with_camera(video) as browser:
        second = await browser.new_page()
        second.set_default_timeout(STEP_TIMEOUT_MS)
        await second.goto(web_server.url + "/")
        await tid(second, "tab-login").click()
        await tid(second, "login-address").fill(address)
        await tid(second, "login-password").fill(PASSWORD)
        await tid(second, "login-method-link").click()
        await tid(second, "login-scan").click()
        await expect(tid(second, "login-code")).to_have_value(code)
        await tid(second, "login-submit").click()
        await expect(tid(first, "link-request")).to_be_visible()
        await tid(first, "link-confirm").click()
        await expect(tid(second, "new-chat")).to_be_visible()


async def test_contact_verified_by_scanning_their_code(
    web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory, tmp_path: Path
) -> None:
    """Rosa shows her code (in her panel for any contact); Sam's browser
    scans it from his panel for Rosa and marks her verified; a code that is
    not Rosa's (Tom's, as the SDK makes it) is refused."""
    rosa = await new_page(web_server)
    rosa_address, _ = await sign_up(rosa, "rosa")
    tom = await sdk("tom", profile=False)
    await start_chat(rosa, tom.user)
    await tid(rosa, "chat-info").click()
    video = tmp_path / "camera.y4m"
    y4m(await tid(rosa, "qr").screenshot(), video)

    async with browser_with_camera(video) as browser:
        sam = await browser.new_page()
        sam.set_default_timeout(STEP_TIMEOUT_MS)
        await sam.goto(web_server.url + "/")
        await sign_up(sam, "sam")
        # Tom's chat first: Rosa's code does not verify Tom
        await start_chat(sam, tom.user)
        await tid(sam, "chat-info").click()
        await tid(sam, "verify-scan").click()
        await expect(sam.get_by_role("alert")).to_contain_text("not")
        await expect(tid(sam, "verified")).to_have_count(0)
        # Rosa's chat: her code verifies her
        await start_chat(sam, rosa_address)
        await tid(sam, "chat-info").click()
        await tid(sam, "verify-scan").click()
        await expect(tid(sam, "verified")).to_be_visible()
