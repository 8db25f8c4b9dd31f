"""``taube mail``: run the e-mail connector on this device.

    taube mail connect alice@example.org --imap-host imap.example.org --smtp-host smtp.example.org
    taube mail run              # relay until stopped (Ctrl-C or SIGTERM); with no
                                # account yet, wait for one from the web app's settings
    taube mail status

The connector needs the ``email`` extra (``pip install 'taube[email]'``);
it is imported only by these commands. The account's password comes from
``TAUBE_MAIL_PASSWORD`` or a prompt and is kept sealed in the profile.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from taube.cli.io import out as _out
from taube.cli.io import run_until_signal
from taube.cli.io import secret as _secret
from taube.client import Client, ClientError

if TYPE_CHECKING:
    from taube.connectors.email.connector import Progress

Handler = Any


def _connector_modules() -> Any:
    try:
        from taube.connectors.email import account, connector
    except ImportError as exc:
        raise ClientError(
            f"the e-mail connector needs: pip install 'taube[email]' ({exc})"
        ) from exc
    return account, connector


async def mail_connect(client: Client, args: argparse.Namespace) -> int:
    _, connector_module = _connector_modules()
    from taube.connectors import control
    from taube.connectors.email import autoconfig, service

    profile = client.profile
    if profile is None or not client.logged_in:
        raise ClientError("log in or register first (taube account ...)")
    if bool(args.imap_host) != bool(args.smtp_host):
        raise ClientError("give both --imap-host and --smtp-host, or neither (autoconfig)")
    password = _secret("TAUBE_MAIL_PASSWORD", f"password of {args.address}: ")
    settings = control.MailSettings(
        address=args.address,
        password=password,
        imap_host=args.imap_host or "",
        imap_port=args.imap_port or 0,
        imap_security=args.imap_security,
        smtp_host=args.smtp_host or "",
        smtp_port=args.smtp_port or 0,
        smtp_security=args.smtp_security,
        user=args.user or "",
        display_name=args.name or "",
    )
    try:
        account = await service.account_from(settings)
    except autoconfig.AutoconfigError as exc:
        raise ClientError(
            f"the servers of {args.address} were not found ({exc}):"
            " give --imap-host and --smtp-host"
        ) from exc
    except control.BadControl as exc:
        raise ClientError(str(exc)) from exc
    try:
        await connector_module.verify_account(account)
    except Exception as exc:
        raise ClientError(f"cannot use {account.address}: {exc}") from exc
    fingerprint = service.keep_account(client, account)
    _out(
        args,
        {"address": account.address, "fingerprint": fingerprint},
        f"connected {account.address}; its OpenPGP key is {fingerprint}\n"
        "run `taube mail run` on this device to relay mail (keep it running)",
    )
    return 0


async def mail_run(client: Client, args: argparse.Namespace) -> int:
    _connector_modules()
    from taube.connectors.control import State, Status
    from taube.connectors.email.service import MailService

    def progress(now: Progress) -> None:
        print(
            f"mail: {now.fetched} fetched, {now.brought_in} in, {now.relayed} out,"
            f" {now.skipped} left alone, {now.aside} kept aside",
            file=sys.stderr,
            flush=True,
        )

    def status(now: Status) -> None:
        if now.state is State.UNCONFIGURED:
            line = "waiting for an account: `taube mail connect`, or the web app's settings"
        elif now.state is State.CHECKING:
            line = f"relaying {now.address}"
        else:
            line = f"{now.state.value.replace('_', ' ')}" + (f": {now.error}" if now.error else "")
        print(f"mail: {line}", file=sys.stderr, flush=True)

    service = MailService(client, on_progress=progress if args.progress else None, on_status=status)
    await client.sync(timeout=60)
    return await run_until_signal(service.run())


async def mail_status(client: Client, args: argparse.Namespace) -> int:
    _, connector_module = _connector_modules()
    try:
        connector = connector_module.EmailConnector.open(client)
    except LookupError as exc:
        raise ClientError(str(exc)) from exc
    try:
        portals = [
            {"conversation": c, "chat": p.chat, "peers": list(p.peers), "served": p.by is not None}
            for c, p in client.portals().items()
            if p.network == "email"
        ]
        aside = connector.state.aside("email")
        _out(
            args,
            {
                "address": connector.account.address,
                "fingerprint": connector.key.fingerprint,
                "portals": portals,
                "aside": [{"mail": m, "reason": r} for m, r in aside],
            },
            f"{connector.account!r}\nOpenPGP key {connector.key.fingerprint}\n"
            f"{len(portals)} chats by e-mail"
            + "".join(f"\n  {p['chat']} ({p['conversation']})" for p in portals)
            + (f"\n{len(aside)} mails kept aside:" if aside else "")
            + "".join(f"\n  {m}: {r}" for m, r in aside),
        )
    finally:
        connector.state.close()
    return 0


async def mail_invite(client: Client, args: argparse.Namespace) -> int:
    _, connector_module = _connector_modules()
    connector = _open(connector_module, client)
    try:
        if args.group:
            await client.sync(timeout=60)
        link = connector.invite(args.group or None)
    except ValueError as exc:
        raise ClientError(f"{args.group}: {exc}") from exc
    finally:
        connector.state.close()
    _out(
        args,
        {"invite": link},
        f"{link}\nshow it as a QR code or send it; whoever joins gets a verified,"
        " encrypted chat (keep `taube mail run` running). Good for one person, 7 days.",
    )
    return 0


async def mail_join(client: Client, args: argparse.Namespace) -> int:
    _, connector_module = _connector_modules()
    from taube.connectors.email.securejoin import InviteError

    connector = _open(connector_module, client)
    try:
        await client.sync(timeout=60)
        conversation = await connector.join(args.invite)
        await client.flush()
    except InviteError as exc:
        raise ClientError(f"not a Delta Chat contact invite: {exc}") from exc
    finally:
        connector.state.close()
    _out(
        args,
        {"conversation": conversation},
        f"asked to join ({conversation}); `taube mail run` completes it",
    )
    return 0


def _open(connector_module: Any, client: Client) -> Any:
    try:
        return connector_module.EmailConnector.open(client)
    except LookupError as exc:
        raise ClientError(str(exc)) from exc


def add_mail_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mail = sub.add_parser("mail", help="chat over e-mail (the e-mail connector)").add_subparsers(
        dest="action", required=True
    )
    p = mail.add_parser("connect", help="set up the mail account this device relays")
    p.add_argument("address")
    p.add_argument("--imap-host", help="(without both hosts: found by the domain's autoconfig)")
    p.add_argument("--imap-port", type=int)
    p.add_argument("--imap-security", choices=("ssl", "starttls", "plain"), default="ssl")
    p.add_argument("--smtp-host")
    p.add_argument("--smtp-port", type=int)
    p.add_argument("--smtp-security", choices=("ssl", "starttls", "plain"), default="ssl")
    p.add_argument("--user", help="the login name, if not the address")
    p.add_argument("--name", help="the name shown to mail contacts")
    p.set_defaults(handler=mail_connect)
    p = mail.add_parser("run", help="relay between taube and the mailbox until stopped")
    p.add_argument("--progress", action="store_true", help="print counts as mail moves")
    p.set_defaults(handler=mail_run)
    mail.add_parser("status", help="the account, its key, chats and mails kept aside").set_defaults(
        handler=mail_status
    )
    p = mail.add_parser(
        "invite", help="a Secure-Join invite link for a Delta Chat user (verified first contact)"
    )
    p.add_argument("--group", help="invite into this group (a conversation id) instead")
    p.set_defaults(handler=mail_invite)
    p = mail.add_parser("join", help="join a Delta Chat user's invite (their QR code's text)")
    p.add_argument("invite")
    p.set_defaults(handler=mail_join)
