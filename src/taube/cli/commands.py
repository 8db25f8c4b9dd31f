"""The client commands of ``taube``: thin over ``taube.client``.

Every command that prints data prints JSON with the global ``--json`` (one
object per line for streams). Passwords come from ``TAUBE_PASSWORD`` or a
prompt; the recovery code from ``TAUBE_RECOVERY_CODE`` or a prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import html
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from taube.cli.io import out as _out
from taube.cli.io import secret as _secret
from taube.client import Client, ClientError, Message, Received
from taube.client import events as ev
from taube.proto.ids import ConversationId

Handler = Callable[[Client, argparse.Namespace], Awaitable[int]]


def default_profile() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "taube-client"


def _message_json(message: Message, client: Client | None = None) -> dict[str, Any]:
    """A message for ``--json``: attachments by their saved path, never their keys."""
    data = dataclasses.asdict(message)
    data["text"] = message.text
    data["attachments"] = [
        {
            "name": a.get("name"),
            "mime": a.get("mime"),
            "size": a.get("size"),
            "kind": a.get("kind"),
            "path": str(client.attachment_path(message, i)) if client is not None else None,
        }
        for i, a in enumerate(message.content.get("attachments", []))
    ]
    data.pop("content")
    remote = message.remote
    data["remote"] = None if remote is None else dataclasses.asdict(remote)
    return data


def _message_line(message: Message) -> str:
    marks = []
    if message.edited:
        marks.append("(edited)")
    if message.deleted:
        marks.append("(deleted)")
    if message.reactions:
        marks.append(" ".join(f"{k}{len(v)}" for k, v in message.reactions.items()))
    reply = f"[reply to {message.reply_to}] " if message.reply_to else ""
    files = "".join(
        f" [{a.get('kind', 'file')}: {a.get('name')}]"
        for a in message.content.get("attachments", [])
    )
    remote = message.remote
    sender = f"{remote.name or remote.sender} <{remote.sender}>" if remote else message.sender
    if message.relayed is not None:
        marks.append(
            f"(by {message.relayed.network}: failed, {message.relayed.error})"
            if message.relayed.error
            else f"(by {message.relayed.network}, "
            f"{'encrypted' if message.relayed.encrypted else 'NOT encrypted'})"
        )
    return (
        f"{message.conversation} {sender}: {reply}{message.text}{files}"
        f"{' ' + ' '.join(marks) if marks else ''}"
    )


async def _target(client: Client, to: str) -> ConversationId:
    """An address starts (or finds) the direct chat; anything else is a conversation id."""
    if "@" in to:
        return await client.start_chat(to)
    return ConversationId(to)


# ---------------------------------------------------------------- account


async def account_register(client: Client, args: argparse.Namespace) -> int:
    password = _secret("TAUBE_PASSWORD", "password: ")
    code = await client.register(args.server, args.address, password, args.device_name)
    _out(
        args,
        {"user": client.user, "device": client.device, "recovery_code": code},
        f"registered {client.user} (device {client.device})\n"
        f"recovery code (write it down, it is shown once): {code}",
    )
    return 0


async def account_login(client: Client, args: argparse.Namespace) -> int:
    password = _secret("TAUBE_PASSWORD", "password: ")
    code = _secret("TAUBE_RECOVERY_CODE", "recovery code: ")
    await client.login(args.server, args.address, password, code, args.device_name)
    _out(
        args,
        {"user": client.user, "device": client.device},
        f"logged in as {client.user} (device {client.device})",
    )
    return 0


async def account_link(client: Client, args: argparse.Namespace) -> int:
    """On an existing device: show a code, wait for the new device, confirm."""
    code = client.link_start()
    _out(
        args,
        {"event": "link_code", "code": code},
        f"on the new device run:  taube account link-accept {code} {client.user} --server ...",
    )
    await client.connect()
    request = await client.link_wait(timeout=args.timeout)
    question = f"link device {request.device} ({request.name or 'no name'})? [y/N] "
    if not args.yes:
        answer = await asyncio.to_thread(input, question) if sys.stdin.isatty() else "n"
        if answer.strip().lower() not in ("y", "yes"):
            _out(args, {"event": "link_refused", "device": request.device}, "not linked")
            return 1
    await client.link_confirm(request, share_history=args.share_history)
    _out(args, {"event": "linked", "device": request.device}, f"linked {request.device}")
    return 0


async def account_link_accept(client: Client, args: argparse.Namespace) -> int:
    """On the new device: log in and receive the identity key from the existing device."""
    password = _secret("TAUBE_PASSWORD", "password: ")
    await client.link(
        args.server, args.address, password, args.code, args.device_name, timeout=args.timeout
    )
    _out(
        args,
        {"user": client.user, "device": client.device},
        f"linked: this is {client.user} (device {client.device})",
    )
    return 0


async def account_devices(client: Client, args: argparse.Namespace) -> int:
    devices = await client.devices()
    for device in devices:
        _out(
            args,
            {
                "device": device.device,
                "name": device.name,
                "current": device.current,
                "created_ms": device.created_ms,
                "last_seen_ms": device.last_seen_ms,
            },
            f"{device.device} {device.name or '-'}{' (this device)' if device.current else ''}",
        )
    return 0


# ---------------------------------------------------------------- messages


async def send(client: Client, args: argparse.Namespace) -> int:
    conversation = await _target(client, args.to)
    await client.connect()
    if args.file:
        msg_id = await client.send_file(conversation, Path(args.file), caption=args.text)
    else:
        msg_id = await client.send_text(conversation, args.text, reply_to=args.reply_to)
    await client.flush(timeout=args.timeout)
    _out(args, {"conversation": conversation, "id": msg_id}, msg_id)
    return 0


async def receive(client: Client, args: argparse.Namespace) -> int:
    await client.sync(timeout=args.timeout + 10)
    quiet = None if args.follow else args.timeout
    async for event in client.events(timeout=quiet):
        _print_event(args, event, client)
    return 0


#: annotations nobody needs to see arrive (they change what is shown instead)
_SILENT = frozenset({ev.RECEIPT, ev.PROFILE, ev.STATE_KEY, ev.AVATAR, ev.PORTAL, ev.RELAY})


def _print_event(args: argparse.Namespace, event: ev.Event, client: Client) -> None:
    if isinstance(event, Received) and event.message.type in _SILENT:
        return
    if isinstance(event, Received):
        message = event.message
        _out(args, {"event": "message", **_message_json(message, client)}, _message_line(message))
    elif isinstance(event, ev.KeyChanged):
        _out(
            args,
            {
                "event": "key_changed",
                "user": event.user,
                "verified": event.verified,
                "reason": event.reason,
            },
            f"! {event.user}: {event.reason}",
        )
    elif isinstance(event, ev.Undecryptable):
        _out(
            args,
            {
                "event": "undecryptable",
                "conversation": event.conversation,
                "id": event.id,
                "sender": event.sender,
                "reason": event.reason,
            },
            f"! message {event.id} from {event.sender} not shown: {event.reason}",
        )


async def chats(client: Client, args: argparse.Namespace) -> int:
    for conversation, state in await client.conversations():
        members = sorted(state.members)
        _out(
            args,
            {
                "conversation": conversation,
                "title": client.title(conversation),
                "kind": state.kind.value,
                "members": {u: r.value for u, r in state.members.items()},
            },
            f"{conversation} {client.title(conversation) or state.kind.value}:"
            f" {', '.join(members)}",
        )
    return 0


async def history(client: Client, args: argparse.Namespace) -> int:
    for message in client.history(ConversationId(args.conversation), args.limit, notices=True):
        if message.type == ev.NOTICE:  # kept by this device: a gap, a key change
            _out(
                args,
                {
                    "event": "notice",
                    **message.content,
                    "user": message.sender,
                    "ts": message.ts,
                    "text": message.text,
                },
                f"-- {message.text} --",
            )
            continue
        _out(args, _message_json(message, client), _message_line(message))
    return 0


async def search(client: Client, args: argparse.Namespace) -> int:
    for message in client.search(args.text):
        _out(args, _message_json(message, client), _message_line(message))
    return 0


# ---------------------------------------------------------------- groups


async def group_create(client: Client, args: argparse.Namespace) -> int:
    conversation = await client.create_group(args.members)
    await client.connect()
    await client.rename(conversation, args.name)
    await client.flush()
    _out(args, {"conversation": conversation, "name": args.name}, conversation)
    return 0


async def group_add(client: Client, args: argparse.Namespace) -> int:
    await client.add_member(ConversationId(args.conversation), args.address)
    return 0


async def group_remove(client: Client, args: argparse.Namespace) -> int:
    await client.remove_member(ConversationId(args.conversation), args.address)
    return 0


# ---------------------------------------------------------------- trust, export, chat


async def _emoji(client: Client, args: argparse.Namespace) -> int:
    """The emoji (SAS) flow: start it (``--emoji``) or answer one (``--accept``)."""
    await client.connect()
    if args.accept:
        request = await _next(client, ev.VerificationRequest, args.timeout)
        await client.verify_accept(request.transaction)
    else:
        await client.verify_start(args.address)
    shown = await _next(client, ev.VerificationEmoji, args.timeout)
    emoji = "  ".join(f"{e} {name}" for e, name in shown.emoji)
    _out(
        args,
        {
            "event": "emoji",
            "user": shown.user,
            "emoji": [e for e, _ in shown.emoji],
            "decimals": list(shown.decimals),
        },
        f"compare with {shown.user}:\n{emoji}\n{' '.join(map(str, shown.decimals))}",
    )
    if not args.yes:
        answer = await asyncio.to_thread(input, "same on both devices? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            await client.verify_cancel(shown.transaction, "the emoji did not match")
            return 1
    await client.verify_confirm(shown.transaction)
    done = await _next(client, ev.VerificationDone, args.timeout)
    _out(
        args,
        {
            "event": "verified" if done.verified else "not_verified",
            "user": done.user,
            "reason": done.reason,
        },
        f"{done.user} verified" if done.verified else f"not verified: {done.reason}",
    )
    return 0 if done.verified else 1


async def _next(client: Client, kind: type[ev.E], timeout: float) -> ev.E:
    async for event in client.events(timeout=timeout):
        if isinstance(event, kind):
            return event
    raise ClientError(f"nothing came within {timeout:.0f} s")


async def verify(client: Client, args: argparse.Namespace) -> int:
    if args.emoji or args.accept:
        return await _emoji(client, args)
    number = await client.safety_number(args.address)
    if args.confirm:
        await client.verify(args.address)
    _out(
        args,
        {
            "user": args.address,
            "safety_number": number.replace(" ", ""),
            "verified": bool(args.confirm),
        },
        f"safety number with {args.address}:\n{number}"
        + (
            "\nmarked as verified"
            if args.confirm
            else "\ncompare it with theirs, then run again with --confirm"
        ),
    )
    return 0


def _progress(step: str, done: int, total: int) -> None:
    if done == total or done % 500 == 0:
        print(f"{step}: {done}/{total}", file=sys.stderr, flush=True)


async def export(client: Client, args: argparse.Namespace) -> int:
    if args.conversation is None:
        if not args.output:
            raise ClientError("the whole history goes to a file: --output FILE")
        code = await client.export_archive(Path(args.output), _progress)
        _out(
            args,
            {"archive": args.output, "code": code},
            f"history written to {args.output}\n"
            f"the code that opens it (shown once, keep it apart from the file): {code}",
        )
        return 0
    messages = client.history(ConversationId(args.conversation), limit=1_000_000)
    total = len(messages)
    if args.format == "json":
        data = {"conversation": args.conversation, "messages": [_message_json(m) for m in messages]}
        text = json.dumps(data, ensure_ascii=False, indent=2)
    else:
        rows = []
        for index, message in enumerate(messages, 1):
            rows.append(
                f"<p><b>{html.escape(message.sender)}</b> "
                f"<small>{message.ts}</small><br>{html.escape(message.text)}</p>"
            )
            if index % 1000 == 0:
                print(f"export: {index}/{total}", file=sys.stderr)
        text = (
            "<!doctype html><meta charset=utf-8><title>taube export</title>\n"
            f"<h1>{html.escape(args.conversation)}</h1>\n" + "\n".join(rows) + "\n"
        )
    if args.output:
        await asyncio.to_thread(Path(args.output).write_text, text, "utf-8")
        print(f"export: {total} messages written to {args.output}", file=sys.stderr)
    else:
        print(text)
    return 0


async def import_(client: Client, args: argparse.Namespace) -> int:
    code = _secret("TAUBE_ARCHIVE_CODE", "the archive's code: ")
    count = await client.import_archive(Path(args.archive), code, _progress)
    _out(args, {"imported": count}, f"{count} messages imported")
    return 0


async def chat(client: Client, args: argparse.Namespace) -> int:
    """A line-mode chat: lines you type are sent, messages that come are printed."""
    conversation = await _target(client, args.address)
    await client.connect()
    for message in client.history(conversation, limit=20):
        print(_message_line(message))
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    loop.add_reader(sys.stdin.fileno(), lambda: lines.put_nowait(sys.stdin.readline() or None))

    async def show() -> None:
        async for event in client.events():
            if (
                isinstance(event, Received)
                and event.message.conversation == conversation
                and event.message.type not in _SILENT
            ):
                print(_message_line(event.message), flush=True)

    printer = asyncio.create_task(show())
    try:
        while (line := await lines.get()) is not None:
            if line.strip():
                await client.send_text(conversation, line.rstrip("\n"))
        await client.flush()
    finally:
        loop.remove_reader(sys.stdin.fileno())
        printer.cancel()
    return 0


# ---------------------------------------------------------------- parser


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    account = sub.add_parser("account", help="register, log in, devices").add_subparsers(
        dest="action", required=True
    )
    for name, fn, helptext in (
        ("register", account_register, "create an account"),
        ("login", account_login, "add this device to an account"),
    ):
        p = account.add_parser(name, help=helptext)
        p.add_argument("address")
        p.add_argument("--server", required=True, help="http://host:port")
        p.add_argument("--device-name", default="cli")
        p.set_defaults(handler=fn)
    account.add_parser("devices", help="list this account's devices").set_defaults(
        handler=account_devices
    )
    p = account.add_parser("link", help="show a code to link a new device, then confirm it")
    p.add_argument("--yes", action="store_true", help="confirm without asking")
    p.add_argument(
        "--share-history",
        action="store_true",
        help="also give the new device this device's message history",
    )
    p.add_argument("--timeout", type=float, default=600.0)
    p.set_defaults(handler=account_link)
    p = account.add_parser("link-accept", help="link this new device with a code")
    p.add_argument("code")
    p.add_argument("address")
    p.add_argument("--server", required=True, help="http://host:port")
    p.add_argument("--device-name", default="cli")
    p.add_argument("--timeout", type=float, default=600.0)
    p.set_defaults(handler=account_link_accept)

    p = sub.add_parser("send", help="send a message to an address or conversation")
    p.add_argument("to")
    p.add_argument("text")
    p.add_argument("--file")
    p.add_argument("--reply-to")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(handler=send)

    p = sub.add_parser("receive", help="print messages as they arrive")
    p.add_argument("--timeout", type=float, default=5.0, help="stop after S quiet seconds")
    p.add_argument("--follow", action="store_true", help="keep going")
    p.set_defaults(handler=receive)

    sub.add_parser("chats", help="list conversations").set_defaults(handler=chats)
    p = sub.add_parser("history", help="a conversation's messages")
    p.add_argument("conversation")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(handler=history)
    p = sub.add_parser("search", help="search this device's messages")
    p.add_argument("text")
    p.set_defaults(handler=search)

    group = sub.add_parser("group", help="create and change groups").add_subparsers(
        dest="action", required=True
    )
    p = group.add_parser("create")
    p.add_argument("name")
    p.add_argument("members", nargs="+")
    p.set_defaults(handler=group_create)
    for name, fn in (("add", group_add), ("remove", group_remove)):
        p = group.add_parser(name)
        p.add_argument("conversation")
        p.add_argument("address")
        p.set_defaults(handler=fn)

    p = sub.add_parser("verify", help="show (and confirm) the safety number with someone")
    p.add_argument("address")
    p.add_argument("--confirm", action="store_true")
    p.add_argument("--emoji", action="store_true", help="verify by emoji with their device")
    p.add_argument("--accept", action="store_true", help="answer their emoji verification")
    p.add_argument("--yes", action="store_true", help="confirm the emoji without asking")
    p.add_argument("--timeout", type=float, default=120.0)
    p.set_defaults(handler=verify)

    p = sub.add_parser(
        "export", help="export a conversation, or everything as an encrypted archive"
    )
    p.add_argument("conversation", nargs="?", help="omit for the whole history (an archive)")
    p.add_argument("--format", choices=("json", "html"), default="json")
    p.add_argument("--output")
    p.set_defaults(handler=export)

    p = sub.add_parser("import", help="bring an archive from `taube export` into this account")
    p.add_argument("archive")
    p.set_defaults(handler=import_)

    p = sub.add_parser("chat", help="an interactive line-mode chat")
    p.add_argument("address")
    p.set_defaults(handler=chat)

    from taube.cli.mail import add_mail_commands

    add_mail_commands(sub)

    from taube.cli.call import add_call_commands

    add_call_commands(sub)


async def run(args: argparse.Namespace) -> int:
    async with Client(args.profile, passphrase=os.environ.get("TAUBE_PASSPHRASE")) as client:
        handler: Handler = args.handler
        return await handler(client, args)
