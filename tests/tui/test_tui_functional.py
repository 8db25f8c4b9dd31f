"""``taube tui`` under Textual's pilot at 80x24, against a real server, with
SDK clients as the people on the other side."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from textual import events

from taube.client import Client, Typing
from taube.proto.ids import ConversationId
from taube.testing import ServerProcess
from taube.tui.screens import HitItem, MembersDialog, SearchDialog
from taube.tui.widgets import KEYS, OlderItem
from tests.client.conftest import Sdk
from tests.client.test_messaging_functional import texts_of
from tests.tui.conftest import RunTui, chat_rows, chat_with_alice, shown_texts, until


async def type_text(pilot: object, text: str) -> None:
    """Type as a person does: one key per character."""
    keys = ["space" if c == " " else c for c in text]
    await pilot.press(*keys)  # type: ignore[attr-defined]


async def received(client: Client, conversation: ConversationId, count: int) -> list[str]:
    async with asyncio.timeout(15):
        while len(client.history(conversation)) < count:
            await asyncio.sleep(0.05)
    return [m.text for m in client.history(conversation)]


async def test_receive_and_send_both_ways(
    shared_server: ServerProcess, sdk: Sdk, tui: RunTui
) -> None:
    make = sdk(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    await bob.set_profile("Bob")
    chat = await bob.start_chat(alice.user)
    await bob.send_text(chat, "hello alice")
    await bob.flush()
    await texts_of(alice, chat, 1)
    async with tui(alice) as (app, pilot):
        assert KEYS in str(app.query_one("#keys").render())
        await until(pilot, lambda: chat_rows(app) == [("Bob", "", 1)], what="Bob, 1 unread")
        # a message in a chat that is not open: unread count, bell and note
        await bob.send_text(chat, "are you there?")
        await bob.flush()
        await until(pilot, lambda: chat_rows(app) == [("Bob", "", 2)], what="2 unread")
        await until(pilot, lambda: app.rung == 1 and any("are you there?" in n for n in app.notes))
        # open it (the chat list has the focus): both messages, read now
        await pilot.press("enter")
        await until(pilot, lambda: shown_texts(app) == ["hello alice", "are you there?"])
        await until(pilot, lambda: chat_rows(app) == [("Bob", "", 0)], what="read")
        async with asyncio.timeout(15):
            while not all(alice.user in m.read_by for m in bob.history(chat)):
                await asyncio.sleep(0.05)
        # write two lines: Ctrl+J is a new line, Enter sends
        assert app.focused is app.compose_box
        await type_text(pilot, "hi bob")
        await pilot.press("ctrl+j")
        await type_text(pilot, "second line")
        await pilot.press("enter")
        assert (await received(bob, chat, 3))[-1] == "hi bob\nsecond line"
        assert app.compose_box.text == ""
        await until(pilot, lambda: shown_texts(app)[-1] == "hi bob\nsecond line")
        # in the open chat: shown, no bell; carol's new chat rings
        await bob.send_text(chat, "good")
        await bob.flush()
        await until(pilot, lambda: shown_texts(app)[-1] == "good")
        assert app.rung == 1
        other = await carol.start_chat(alice.user)
        await carol.send_text(other, "ping from carol")
        await carol.flush()
        await until(pilot, lambda: app.rung == 2)
        await until(pilot, lambda: len(chat_rows(app)) == 2)
        assert chat_rows(app)[0][2] == 1  # carol's chat on top, 1 unread
        assert any("ping from carol" in n for n in app.notes)
        assert shown_texts(app) == ["hello alice", "are you there?", "hi bob\nsecond line", "good"]


async def test_scroll_back_through_a_long_chat(
    shared_server: ServerProcess, sdk: Sdk, tui: RunTui
) -> None:
    alice, _, _ = await chat_with_alice(sdk(shared_server), *(f"line {i}" for i in range(120)))
    async with tui(alice) as (app, pilot):
        await pilot.press("enter")
        await until(pilot, lambda: len(shown_texts(app)) == 50)
        assert shown_texts(app)[-1] == "line 119"
        assert app.message_list.query(OlderItem)
        # the mouse wheel at the top of the chat brings the next 50
        app.message_list.scroll_home(animate=False)
        await pilot.pause()
        # (the pilot has no public wheel; its own helper posts the event where a mouse would)
        await pilot._post_mouse_events([events.MouseScrollUp], "#messages")
        await until(pilot, lambda: len(shown_texts(app)) == 100)
        # ↑ from the first message onto "older messages" brings the rest;
        # the highlight stays on the message it was on
        app.message_list.focus()
        app.message_list.index = 1
        await pilot.press("up")
        await until(pilot, lambda: shown_texts(app)[0] == "line 0")
        selected = app.message_list.selected_message()
        assert selected is not None
        assert selected.text == "line 20"
        assert shown_texts(app) == [f"line {i}" for i in range(120)]
        assert not app.message_list.query(OlderItem)
        assert len(set(app.message_list.ids())) == 120


async def test_new_chat_new_group_and_members(
    shared_server: ServerProcess, sdk: Sdk, tui: RunTui
) -> None:
    make = sdk(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    async with tui(alice) as (app, pilot):
        await pilot.press("ctrl+n")
        await type_text(pilot, bob.user)
        await pilot.press("enter")
        await until(pilot, lambda: app.open_chat is not None)
        direct = app.open_chat
        assert direct is not None
        await type_text(pilot, "first words")
        await pilot.press("enter")
        assert await received(bob, direct, 1) == ["first words"]

        await pilot.press("ctrl+g")
        await type_text(pilot, "Hiking")
        await pilot.press("enter")
        await type_text(pilot, f"{bob.user}, {carol.user}")
        await pilot.press("enter")
        await until(pilot, lambda: app.open_chat not in (None, direct))
        group = app.open_chat
        assert group is not None
        await until(pilot, lambda: ("Hiking", "group", 0) in chat_rows(app))
        await type_text(pilot, "who is in?")
        await pilot.press("enter")
        for member in (bob, carol):
            assert await received(member, group, 1) == ["who is in?"]
        await until(pilot, lambda: bob.title(group) == "Hiking")

        await pilot.press("ctrl+t")
        await until(pilot, lambda: isinstance(app.screen, MembersDialog))
        text = " ".join(str(label.render()) for label in app.screen.query("Label"))
        for user in (alice.user, bob.user, carol.user):
            assert user in text
        # remove carol: highlight her and press Delete
        members = app.screen.query_one("#members")
        members.focus()
        names = [item.name for item in members.query("ListItem")]
        for _ in range(names.index(carol.user)):
            await pilot.press("down")
        await pilot.press("delete")
        async with asyncio.timeout(15):
            while carol.user in (await bob.state(group)).members:
                await pilot.pause(0.05)
        assert set((await alice.state(group)).members) == {alice.user, bob.user}
        await until(pilot, lambda: any(f"removed {carol.user}" in n for n in app.notes))


async def test_files_both_ways(
    shared_server: ServerProcess, sdk: Sdk, tui: RunTui, tmp_path: Path
) -> None:
    alice, bob, chat = await chat_with_alice(sdk(shared_server), "send me the plan")
    plan = tmp_path / "plan.pdf"
    plan.write_bytes(b"%PDF-1.4 " + os.urandom(3000))
    async with tui(alice) as (app, pilot):
        await pilot.press("enter")
        await until(pilot, lambda: shown_texts(app) == ["send me the plan"])
        await type_text(pilot, "here it is")
        await pilot.press("ctrl+o")
        await type_text(pilot, str(plan))
        await pilot.press("enter")
        async with asyncio.timeout(15):
            while len(bob.history(chat)) < 2:
                await asyncio.sleep(0.05)
        got = bob.history(chat)[-1]
        assert got.text == "here it is"
        assert bob.attachment_path(got).read_bytes() == plan.read_bytes()
        # a file that is not there: said, nothing sent
        await pilot.press("ctrl+o")
        await type_text(pilot, str(tmp_path / "nothing.pdf"))
        await pilot.press("enter")
        await until(pilot, lambda: any("no such file" in n for n in app.notes))
        await pilot.press("escape")

        photo = tmp_path / "holiday.png"
        photo.write_bytes(os.urandom(5000))
        await bob.send_file(chat, photo, caption="from the beach")
        await bob.flush()
        await until(pilot, lambda: shown_texts(app)[-1:] == ["from the beach"])
        app.message_list.focus()
        await pilot.press("up")  # alice's own file: not kept here, so the newest is offered
        await pilot.press("ctrl+s")
        await pilot.press("enter")  # the offered place: the save folder, its own name
        saved = app.save_dir / "holiday.png"
        await until(pilot, lambda: saved.exists() and saved.stat().st_size == 5000)
        assert saved.read_bytes() == photo.read_bytes()
        # never over a file that is there
        await pilot.press("ctrl+s")
        await pilot.press("enter")
        await until(pilot, lambda: any("exists" in n for n in app.notes))
        assert saved.read_bytes() == photo.read_bytes()


async def test_search_opens_the_chat_at_the_message(
    shared_server: ServerProcess, sdk: Sdk, tui: RunTui
) -> None:
    make = sdk(shared_server)
    hay = [f"hay {i}" for i in range(80)]
    alice, _, chat = await chat_with_alice(make, "the needle is here", *hay)
    await chat_with_alice(make, "nothing to see", alice=alice)
    async with tui(alice) as (app, pilot):
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, SearchDialog))
        await type_text(pilot, "need")
        await until(pilot, lambda: len(app.screen.query(HitItem)) == 1)
        await pilot.press("enter")  # to the hits
        await pilot.press("enter")  # open
        await until(pilot, lambda: app.open_chat == chat)
        selected = app.message_list.selected_message()
        assert selected is not None
        assert selected.text == "the needle is here"
        assert shown_texts(app)[0] == "the needle is here"  # loaded back to it
        assert len(shown_texts(app)) == 81


async def test_nothing_shown_twice_after_reconnect(
    server: ServerProcess, sdk: Sdk, tui: RunTui
) -> None:
    alice, bob, chat = await chat_with_alice(sdk(server), "before")
    async with tui(alice) as (app, pilot):
        await pilot.press("enter")
        await until(pilot, lambda: shown_texts(app) == ["before"])
        server.kill()
        for i in range(5):
            await bob.send_text(chat, f"while down {i}")  # waits in bob's outbox
        await type_text(pilot, "from alice offline")
        await pilot.press("enter")
        await until(pilot, lambda: shown_texts(app)[-1] == "from alice offline")
        server.restart()
        await bob.flush()
        await alice.flush()
        expected = {"before", "from alice offline", *(f"while down {i}" for i in range(5))}
        await until(pilot, lambda: set(shown_texts(app)) == expected, timeout=30)
        await pilot.pause(1.0)  # anything delivered again would show by now
        assert sorted(shown_texts(app)) == sorted(expected)
        assert len(app.message_list.ids()) == len(set(app.message_list.ids())) == 7
        assert chat_rows(app)[0][2] == 0


def test_tui_without_an_account_says_what_to_do(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taube", "--profile", str(tmp_path / "new"), "tui"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "taube account register" in done.stderr


async def test_the_mouse_opens_a_chat_and_picks_a_file(
    shared_server: ServerProcess, sdk: Sdk, tui: RunTui, tmp_path: Path
) -> None:
    make = sdk(shared_server)
    alice, bob, chat = await chat_with_alice(make, "two files for you")
    files = {}
    for name in ("first.txt", "second.txt"):
        path = tmp_path / name
        path.write_bytes(os.urandom(100))
        files[name] = (await bob.send_file(chat, path), path.read_bytes())
    await bob.flush()
    await texts_of(alice, chat, 3)
    await chat_with_alice(make, "another chat on top", alice=alice)
    async with tui(alice) as (app, pilot):
        assert app.chats[0].conversation != chat
        await pilot.click(f"#chat-{chat}")
        await until(pilot, lambda: app.open_chat == chat and len(shown_texts(app)) == 3)
        first_id, first_bytes = files["first.txt"]
        await pilot.click(f"#msg-{first_id}")
        assert app.message_list.selected_message() is not None
        await pilot.press("ctrl+s")  # the clicked message's file, not the newest
        await pilot.press("enter")
        saved = app.save_dir / "first.txt"
        await until(pilot, lambda: saved.exists() and saved.stat().st_size == 100)
        assert saved.read_bytes() == first_bytes


async def test_names_from_others_are_never_markup(
    shared_server: ServerProcess, sdk: Sdk, tui: RunTui, tmp_path: Path
) -> None:
    """A display name, a message or a file name like Textual markup (which
    can name actions) is shown as the characters it is."""
    make = sdk(shared_server)
    alice = await make("alice")
    bob = await make("bob")
    name = "[@click=app.quit]Bob[/]"
    await bob.set_profile(name)
    chat = await bob.start_chat(alice.user)
    path = tmp_path / "[bold]plan.txt"
    path.write_bytes(b"plan")
    await bob.send_file(chat, path, caption="[red]look[/red]")
    await bob.flush()
    await texts_of(alice, chat, 1)
    async with asyncio.timeout(15):
        while alice.contact(bob.user) is None:
            await asyncio.sleep(0.05)
    async with tui(alice) as (app, pilot):
        await until(pilot, lambda: chat_rows(app) == [(name, "", 1)])
        await pilot.press("enter")
        await until(pilot, lambda: shown_texts(app) == ["[red]look[/red]"])
        shown = str(app.message_list.query("Static").first().render())
        assert name in shown
        assert "[red]look[/red]" in shown
        assert "[bold]plan.txt" in shown
        await pilot.press("ctrl+t")
        await until(pilot, lambda: isinstance(app.screen, MembersDialog))
        labels = " ".join(str(label.render()) for label in app.screen.query("Label"))
        assert f"{name} <{bob.user}>" in labels
        await pilot.press("escape")
        await pilot.press("ctrl+s")
        await pilot.pause()
        labels = " ".join(str(label.render()) for label in app.screen.query("Label"))
        assert "Save [bold]plan.txt to:" in labels
        await pilot.press("escape")
        assert app.is_running


async def test_reply_edit_react_and_delete_from_the_keyboard(
    shared_server: ServerProcess, sdk: Sdk, tui: RunTui
) -> None:
    alice, bob, chat = await chat_with_alice(sdk(shared_server), "lunch at noon?")
    question = bob.history(chat)[0].id
    async with tui(alice) as (app, pilot):
        await pilot.press("enter")
        await until(pilot, lambda: shown_texts(app) == ["lunch at noon?"])
        app.message_list.focus()
        await pilot.press("r")  # reply to the highlighted message
        assert app.focused is app.compose_box
        await type_text(pilot, "yes, at the pizzeria")
        await pilot.press("enter")
        await received(bob, chat, 2)
        answer = bob.history(chat)[-1]
        assert (answer.text, answer.reply_to) == ("yes, at the pizzeria", question)
        await until(pilot, lambda: len(shown_texts(app)) == 2)
        shown = str(app.message_list.query("Static").last().render())
        assert "↪" in shown
        assert "lunch at noon?" in shown  # what it answers, shown with it

        app.message_list.focus()  # the newest (alice's answer) is highlighted
        await pilot.press("e")
        assert app.compose_box.text == "yes, at the pizzeria"
        for _ in "pizzeria":
            await pilot.press("backspace")
        await type_text(pilot, "trattoria")
        await pilot.press("enter")
        async with asyncio.timeout(15):
            while bob.history(chat)[-1].text != "yes, at the trattoria":
                await asyncio.sleep(0.05)
        assert bob.history(chat)[-1].edited

        app.message_list.focus()
        await pilot.press("up")  # bob's question
        await pilot.press("plus")
        async with asyncio.timeout(15):
            while bob.history(chat)[0].reactions != {"👍": [alice.user]}:
                await asyncio.sleep(0.05)
        await pilot.press("e")  # not alice's message: nothing to edit
        await until(pilot, lambda: any("your messages" in n for n in app.notes))
        await pilot.press("down")
        await pilot.press("delete")
        await pilot.press("enter")  # yes, for everyone
        async with asyncio.timeout(15):
            while not bob.history(chat)[-1].deleted:
                await asyncio.sleep(0.05)
        await until(
            pilot, lambda: "(deleted)" in str(app.message_list.query("Static").last().render())
        )
        # esc leaves a reply unsent
        await pilot.press("up", "r")
        await pilot.press("escape")
        await type_text(pilot, "plain")
        await pilot.press("enter")
        await received(bob, chat, 3)
        assert bob.history(chat)[-1].reply_to is None


async def test_typing_shows_both_ways(shared_server: ServerProcess, sdk: Sdk, tui: RunTui) -> None:
    alice, bob, chat = await chat_with_alice(sdk(shared_server), "hi")
    async with tui(alice) as (app, pilot):
        await pilot.press("enter")
        await until(pilot, lambda: shown_texts(app) == ["hi"])
        heading = app.query_one("#chat-title")
        await bob.typing(chat, True)
        await until(pilot, lambda: "typing…" in str(heading.render()))
        await bob.typing(chat, False)
        await until(pilot, lambda: "typing…" not in str(heading.render()))
        bob.pending_events()
        await type_text(pilot, "ok")
        await typing_seen(bob, alice.user, active=True)
        await pilot.press("enter")  # sent: not typing any more
        await typing_seen(bob, alice.user, active=False)


async def typing_seen(client: Client, user: str, active: bool) -> None:
    async with asyncio.timeout(15):
        while not [
            e
            for e in client.pending_events()
            if isinstance(e, Typing) and e.user == user and e.active == active
        ]:
            await asyncio.sleep(0.05)
