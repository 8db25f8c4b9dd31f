"""``taube connect``: other chat networks in the same inbox, relayed by this device.

    taube connect irc --server irc.libera.chat:6697 --tls --nick alice --join '#taube'
    taube connect run           # relay until stopped (Ctrl-C or SIGTERM)
    taube connect status

Each network needs its extra (IRC: ``pip install 'taube[irc]'``), imported
only by these commands. A password (SASL, or the server's) comes from
``TAUBE_IRC_PASSWORD`` or a prompt; the account is kept sealed in the
profile, as the e-mail connector keeps its account.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from taube.cli.io import out as _out
from taube.cli.io import run_until_signal
from taube.cli.io import secret as _secret
from taube.client import Client, ClientError


def _irc() -> Any:
    try:
        from taube.connectors.irc import connector
    except ImportError as exc:
        raise ClientError(f"the IRC connector needs: pip install 'taube[irc]' ({exc})") from exc
    return connector


def _server(value: str, tls: bool) -> tuple[str, int]:
    host, colon, port = value.rpartition(":")
    if not colon:
        return value, 6697 if tls else 6667
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClientError(f"--server {value!r}: give HOST or HOST:PORT")
    return host.strip("[]"), int(port)


async def connect_irc(client: Client, args: argparse.Namespace) -> int:
    connector = _irc()
    from taube.connectors.irc.account import SECRET_NAME, IrcAccount
    from taube.connectors.runner import NetworkError

    profile = client.profile
    if profile is None or not client.logged_in:
        raise ClientError("log in or register first (taube account ...)")
    host, port = _server(args.server, args.tls)
    password = ""
    if args.sasl_user or args.password:
        who = args.sasl_user or f"the server {host}"
        password = _secret("TAUBE_IRC_PASSWORD", f"IRC password of {who}: ")
    channels = [c for c in args.join if c]
    bad = [c for c in channels if not c.startswith(("#", "&")) or any(x in c for x in " ,\x07")]
    if bad:
        raise ClientError(f"not a channel: {', '.join(bad)}")
    account = IrcAccount(
        host=host,
        port=port,
        tls=args.tls,
        tls_verify=not args.no_verify,
        nick=args.nick,
        sasl_user=args.sasl_user or "",
        password=password,
        channels=channels,
    )
    try:
        await connector.IrcNetwork(account).check()
    except (OSError, TimeoutError, NetworkError) as exc:
        raise ClientError(f"cannot use {account!r}: {exc or repr(exc)}") from exc
    profile.put_secret(SECRET_NAME, account.to_bytes())
    _out(
        args,
        {"network": "irc", "server": f"{host}:{port}", "nick": args.nick, "channels": channels},
        f"connected {args.nick} on {host}:{port}"
        + (" (TLS)" if args.tls else " (no TLS: everything in plain on the network)")
        + "\nrun `taube connect run` on this device to relay (keep it running)",
    )
    return 0


async def connect_run(client: Client, args: argparse.Namespace) -> int:
    connector = _irc()
    from taube.connectors.control import State

    def status(state: State, error: str) -> None:
        line = state.value.replace("_", " ") + (f": {error}" if error else "")
        print(f"irc: {line}", file=sys.stderr, flush=True)

    try:
        runner = connector.open_runner(client, on_status=status)
    except LookupError as exc:
        raise ClientError(str(exc)) from exc
    await client.sync(timeout=60)
    try:
        return await run_until_signal(runner.run())
    finally:
        runner.state.close()


async def connect_status(client: Client, args: argparse.Namespace) -> int:
    connector = _irc()
    from taube.connectors.runner import last_status

    try:
        account = connector.load_account(client)
    except LookupError as exc:
        raise ClientError(str(exc)) from exc
    state = connector.open_state(client)
    try:
        last = last_status(state, "irc")
    finally:
        state.close()
    chats = [
        {"conversation": c, "chat": p.chat, "served": p.by is not None}
        for c, p in client.portals().items()
        if p.network == "irc"
    ]
    said = "never run" if last is None else last[0].value + (f": {last[1]}" if last[1] else "")
    when = "" if last is None else datetime.fromtimestamp(last[2] / 1000, UTC).isoformat()
    _out(
        args,
        {
            "network": "irc",
            "server": f"{account.host}:{account.port}",
            "tls": account.tls,
            "nick": account.nick,
            "channels": account.channels,
            "state": None if last is None else last[0].value,
            "error": "" if last is None else last[1],
            "since": when,
            "chats": chats,
        },
        f"irc: {account!r}\n  {said}"
        + (f" (since {when})" if when else "")
        + f"\n  {len(chats)} chats"
        + "".join(f"\n    {c['chat']} ({c['conversation']})" for c in chats),
    )
    return 0


def add_connect_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    connect = sub.add_parser(
        "connect", help="other chat networks in the same inbox (IRC)"
    ).add_subparsers(dest="action", required=True)
    p = connect.add_parser("irc", help="set up the IRC account this device relays")
    p.add_argument("--server", required=True, help="HOST or HOST:PORT (6697 with --tls, else 6667)")
    p.add_argument("--nick", required=True)
    p.add_argument("--tls", action="store_true", help="TLS (recommended; without it all is plain)")
    p.add_argument("--no-verify", action="store_true", help="do not check the TLS certificate")
    p.add_argument("--sasl-user", help="log in with SASL PLAIN (password: TAUBE_IRC_PASSWORD)")
    p.add_argument(
        "--password", action="store_true", help="the server needs a password (PASS), asked for"
    )
    p.add_argument("--join", action="append", default=[], help="a channel to join (repeatable)")
    p.set_defaults(handler=connect_irc)
    connect.add_parser("run", help="relay the connected networks until stopped").set_defaults(
        handler=connect_run
    )
    connect.add_parser("status", help="the accounts, their state and chats").set_defaults(
        handler=connect_status
    )
