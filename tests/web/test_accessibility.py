"""Keyboard and screen-reader basics: every control has a name, the chat
works from the keyboard alone, dialogs close with Escape."""

from __future__ import annotations

from playwright.async_api import Page, expect

from taube.testing import ServerProcess
from tests.web.conftest import PageFactory
from tests.web.driver import message, sign_up, start_chat, tid

#: the controls on screen that a screen reader could not name
UNNAMED = """() => {
  const visible = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== "hidden";
  };
  const named = (el) =>
    (el.getAttribute("aria-label") || "").trim() ||
    (el.getAttribute("aria-labelledby") || "").trim() ||
    (el.getAttribute("title") || "").trim() ||
    (el.labels && el.labels.length > 0) ||
    (el.tagName === "BUTTON" || el.getAttribute("role") === "button" ? el.textContent.trim() : "");
  return [...document.querySelectorAll("button, [role=button], input, textarea, select, a[href]")]
    .filter((el) => visible(el) && el.type !== "hidden" && !named(el) &&
      !el.closest("[aria-hidden=true]") &&
      !(el.tagName === "A" && el.textContent.trim()))
    .map((el) => el.outerHTML.slice(0, 120));
}"""


async def unnamed(page: Page) -> list[str]:
    found: list[str] = await page.evaluate(UNNAMED)
    return found


async def test_every_control_has_a_name(web_server: ServerProcess, new_page: PageFactory) -> None:
    page = await new_page(web_server)
    assert await unnamed(page) == []  # the sign-up screen
    await sign_up(page, "ida")
    assert await unnamed(page) == []  # the chat list
    await start_chat(page, (await sign_up(await new_page(web_server), "joe"))[0])
    assert await unnamed(page) == []  # a chat
    await tid(page, "chat-info").click()
    assert await unnamed(page) == []  # the contact panel
    await tid(page, "open-settings").click()
    assert await unnamed(page) == []  # settings


async def test_chat_from_the_keyboard(web_server: ServerProcess, new_page: PageFactory) -> None:
    other = await new_page(web_server)
    other_address, _ = await sign_up(other, "kim")
    page = await new_page(web_server)
    await sign_up(page, "lou")

    # a dialog opens from the keyboard and Escape closes it
    await tid(page, "new-chat").focus()
    await page.keyboard.press("Enter")
    await expect(tid(page, "new-chat-address")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(tid(page, "new-chat-dialog")).to_have_count(0)

    # a chat started, written and sent without the mouse
    await tid(page, "new-chat").focus()
    await page.keyboard.press("Enter")
    await expect(tid(page, "new-chat-address")).to_be_focused()
    await page.keyboard.type(other_address)
    await page.keyboard.press("Enter")
    await expect(tid(page, "chat-title")).to_have_text(other_address)
    await tid(page, "composer").focus()
    await page.keyboard.type("typed without a mouse")
    await page.keyboard.press("Enter")
    await expect(message(page, "typed without a mouse")).to_be_visible()

    # focus is visible: the focused control draws an outline or a ring
    await tid(page, "composer").focus()
    await page.keyboard.press("Shift+Tab")
    style = await page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth, s.boxShadow]; }"
    )
    assert style[0] != "none" or style[2] != "none", style
