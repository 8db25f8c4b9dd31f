"""Settings → Export / Import in the browser, with the SDK's archive format:
a browser's export imports in the SDK (``taube import``) on a second server,
and an SDK export (``taube export``) imports in a browser on a second
server, every message and picture present, a chat over e-mail a live
portal again. A wrong code changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Page, expect

from taube.client import Client
from taube.client import events as ev
from taube.client.portals import EMAIL
from taube.testing import ServerProcess
from tests.web.conftest import ARTIFACTS, PASSWORD, PageFactory, SdkFactory
from tests.web.driver import (
    SENT,
    message,
    new_address,
    open_conversation,
    received,
    send_text,
    sign_up,
    start_chat,
    tid,
)
from tests.web.test_interop_sdk import png

ELSEWHERE = "jonas@mail.example"


async def import_archive(page: Page, path: Path, code: str) -> None:
    await tid(page, "archive-file").set_input_files(str(path))
    await tid(page, "archive-code-input").fill(code)
    await tid(page, "archive-import").click()


async def test_a_browser_export_imports_in_the_sdk_on_another_server(
    tmp_path: Path, web_server: ServerProcess, new_page: PageFactory, sdk: SdkFactory
) -> None:
    page = await new_page(web_server)
    await sign_up(page, "ida")
    ben = await sdk("ben")
    await start_chat(page, ben.user)
    await send_text(page, "Hallo Ben, vor dem Umzug")
    await received(ben, "vor dem Umzug")
    [(conversation, _)] = await ben.conversations()
    photo = png(tmp_path / "photo.png", (20, 140, 90))
    await ben.send_text(conversation, "Hallo Ida")
    await ben.send_file(conversation, tmp_path / "photo.png", caption="ein Foto")
    await ben.flush()
    await expect(tid(message(page, "ein Foto"), "attachment-image")).to_be_visible()
    await start_chat(page, ELSEWHERE)  # a chat over e-mail (a portal)
    await send_text(page, "per Mail")

    await tid(page, "open-settings").click()
    async with page.expect_download() as waiting:
        await tid(page, "archive-export").click()
    download = await waiting.value
    code = (await tid(page, "archive-code").inner_text()).strip()
    await expect(tid(page, "archive-progress")).to_have_count(0)
    archive = tmp_path / "ida.taube"
    await download.save_as(archive)
    assert archive.read_bytes().startswith(b"TAUBE-ARCHIVE 1\n")
    assert b"vor dem Umzug" not in archive.read_bytes()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await tid(page, "archive-settings").evaluate("e => e.scrollIntoView({block: 'start'})")
    await page.screenshot(path=ARTIFACTS / "archive-export-desktop.png")

    with ServerProcess(tmp_path / "second") as second:
        async with Client(tmp_path / "ida-new") as ida:
            await ida.register(second.url, new_address("ida"), PASSWORD)
            steps: list[str] = []
            count = await ida.import_archive(archive, code, lambda step, *_: steps.append(step))
            assert count >= 5
            assert "messages" in steps
            texts: dict[str, list[ev.Message]] = {}
            for found, _state in await ida.conversations():
                texts[ida.title(found) or ""] = ida.history(found)
            archived = next(v for k, v in texts.items() if k.endswith("(archive)"))
            shown = [m.text for m in archived if m.type == ev.TEXT]
            assert shown == ["Hallo Ben, vor dem Umzug", "Hallo Ida", "ein Foto"]
            mine = next(m for m in archived if m.text == "Hallo Ben, vor dem Umzug")
            assert mine.sender == ida.user  # what she wrote is hers under the new address
            picture = next(m for m in archived if m.text == "ein Foto")
            assert ida.attachment_path(picture).read_bytes() == photo
            portal = ida.find_portal(EMAIL, ELSEWHERE)
            assert portal is not None
            assert [m.text for m in ida.history(portal) if m.type == ev.TEXT] == ["per Mail"]


async def test_an_sdk_export_imports_in_a_browser_and_a_wrong_code_changes_nothing(
    tmp_path: Path, web_server: ServerProcess, new_page: PageFactory
) -> None:
    with ServerProcess(tmp_path / "old") as old:
        async with Client(tmp_path / "kai") as kai, Client(tmp_path / "lea") as lea:
            await kai.register(old.url, new_address("kai"), PASSWORD)
            await lea.register(old.url, new_address("lea"), PASSWORD)
            await lea.set_profile("Lea")
            lea_address = lea.user
            chat = await kai.start_chat(lea.user)
            await kai.send_text(chat, "Hallo Lea, aus dem SDK")
            await kai.flush()
            await lea.sync()
            png(tmp_path / "blue.png", (10, 30, 200))
            await lea.send_file(chat, tmp_path / "blue.png", caption="ein blaues Bild")
            await lea.flush()
            await received(kai, "ein blaues Bild")
            portal = await kai.start_chat(ELSEWHERE)
            await kai.send_text(portal, "eine Mail")
            await kai.flush()
            archive = tmp_path / "kai.taube"
            code = await kai.export_archive(archive)
            other = await kai.export_archive(tmp_path / "other.taube")

    page = await new_page(web_server)
    await sign_up(page, "kai")
    await tid(page, "open-settings").click()
    # a wrong code: a clear error, nothing imported
    await import_archive(page, archive, other)
    await expect(tid(page, "archive-error")).to_contain_text("does not open")
    await tid(page, "panel-back").click()
    await expect(tid(page, "conversation")).to_have_count(0)

    await tid(page, "open-settings").click()
    await import_archive(page, archive, code)
    done = tid(page, "archive-import-done")
    await expect(done).to_contain_text(re.compile(r"\d+ messages imported"))
    await tid(page, "archive-settings").evaluate("e => e.scrollIntoView({block: 'start'})")
    await page.screenshot(path=ARTIFACTS / "archive-import-desktop.png")
    await tid(page, "panel-back").click()
    await expect(tid(page, "conversation")).to_have_count(2)
    await open_conversation(page, f"{lea_address} (archive)")
    await expect(message(page, "aus dem SDK")).to_have_attribute("data-mine", "true")
    await expect(message(page, "ein blaues Bild")).to_have_attribute("data-mine", "false")
    await expect(tid(message(page, "ein blaues Bild"), "attachment-image")).to_be_visible()
    await expect(message(page, "aus dem SDK")).to_have_count(1)  # nothing twice
    await page.go_back()
    await open_conversation(page, ELSEWHERE)
    await expect(tid(tid(page, "chat"), "portal-badge")).to_be_visible()
    await expect(message(page, "eine Mail")).to_have_attribute("data-status", SENT)
    await expect(message(page, "eine Mail")).to_have_attribute("data-mine", "true")
