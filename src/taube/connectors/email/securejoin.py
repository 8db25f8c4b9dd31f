"""Secure-Join: Delta Chat's verified first contact (setup-contact, ``vc-``).

An invite is a link (Delta Chat shows it as a QR code) carrying the
inviter's key fingerprint, address and two random tokens::

    https://i.delta.chat/#<FINGERPRINT>&v=3&i=<invitenumber>&s=<auth>&a=<addr>&n=<name>

The handshake as Delta Chat 2.65 runs it (``v=3``; ``src/securejoin*.rs``)::

    joiner (Bob)                                        inviter (Alice)
    vc-request-pubkey   password mail, unsigned  ──▶
                   ◀──  vc-pubkey   password mail, signed, Alice's Autocrypt
    (Bob checks Alice's key against the fingerprint: Alice is verified)
    vc-request-with-auth  encrypted to Alice, signed, Bob's Autocrypt,
                          gossip of Alice's key, Secure-Join-Auth,
                          Secure-Join-Fingerprint (Bob's)  ──▶
                          (Alice checks auth and signer: Bob is verified)
                   ◀──  vc-contact-confirm  encrypted to Bob, gossip of Bob's key

A group invite (``x=<group id>&g=<name>``) runs the same password mails
(Delta Chat 2.65 names them ``vc-`` for groups too), then the joiner sends
``vg-request-with-auth`` and the inviter adds it to the group with a group
mail carrying ``Secure-Join: vg-member-added``, which is a chat message of
the group's portal here. Inviting into a taube group's portal works the
same way round (``EmailConnector.invite(conversation)``).

The password is ``securejoin/<inviter fingerprint>/<auth>``: only someone
who scanned the invite can read or write the password mails. Invites
without ``v=3`` start the older way instead: ``vc-request`` in the clear
with the invite number and the joiner's Autocrypt key, answered by
``vc-auth-required`` encrypted to that key. All handshake mails are signed
(but the first) and never compressed; none of them is a chat message.

Here an invite is for one person: its auth token works for one completed
handshake, for ``INVITE_TTL_MS``, and is compared in constant time. The
verified key is kept with the peer (``Peers.verified``) and from then on
is the key taube encrypts to and expects signatures from.
"""

from __future__ import annotations

import dataclasses
import email.policy
import email.utils
import hmac
import logging
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.parser import BytesParser

import msgspec

from taube.client import Client
from taube.client import events as ev
from taube.connectors.email import chatmail, openpgp, pgpmime, smtp
from taube.connectors.email.account import MailAccount
from taube.connectors.email.autocrypt import (
    AutocryptHeader,
    PreferEncrypt,
    parse_gossip,
    select_autocrypt_header,
    update_peer,
)
from taube.connectors.email.peers import Peers
from taube.connectors.state import ConnectorState
from taube.proto.ids import ConversationId

log = logging.getLogger(__name__)

NETWORK = "email"
INVITE_PREFIXES = ("https://i.delta.chat/#", "https://i.delta.chat#")
OPENPGP4FPR = "openpgp4fpr:"
#: how long an invite (and a join in progress) stays good; Delta Chat verifies
#: a joiner only this long after making the invite, too
INVITE_TTL_MS = 7 * 24 * 3600 * 1000
#: the state's token kinds: our invites (by auth token), the invites we are joining
AUTH, JOINING = "securejoin:auth", "securejoin:joining"
_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class InviteError(ValueError):
    """Text that is not a Secure-Join invite we can join."""


# ================================================================ the invite


def new_token() -> str:
    """144 random bits, URL-safe base64 (24 characters), as Delta Chat makes them."""
    return secrets.token_urlsafe(18)


def valid_token(value: str) -> bool:
    """What Delta Chat accepts as a token (``validate_id``)."""
    return 10 < len(value) <= 32 and all(c in _URL_SAFE for c in value)


def matching_token(given: str, known: Iterable[str]) -> str | None:
    """The token of ``known`` equal to ``given``, comparing with every one in
    constant time (how long it takes tells nothing about where they differ)."""
    found = None
    for token in known:
        if hmac.compare_digest(given.encode(), token.encode()):
            found = token
    return found


def password(inviter: openpgp.Fingerprint, auth: str) -> str:
    """The shared secret of the password mails (v3)."""
    return f"securejoin/{inviter}/{auth}"


def _quote(value: str) -> str:
    """Percent-encode all but ASCII letters, digits, ``.`` and ``_`` (Delta Chat's set)."""
    return "".join(
        chr(b) if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "._") else f"%{b:02X}"
        for b in value.encode()
    )


def _fingerprint(value: str) -> openpgp.Fingerprint:
    digits = "".join(value.split()).upper()
    if len(digits) != 40 or any(c not in "0123456789ABCDEF" for c in digits):
        raise InviteError("not an OpenPGP v4 fingerprint")
    return openpgp.Fingerprint(digits)


@dataclasses.dataclass(frozen=True)
class Invite:
    """A setup-contact invite (``group_id``: a group invite)."""

    fingerprint: openpgp.Fingerprint
    addr: str
    name: str
    auth: str = dataclasses.field(repr=False)
    invitenumber: str = dataclasses.field(default="", repr=False)
    group_id: str | None = None
    group_name: str | None = None
    v3: bool = True

    @property
    def kind(self) -> str:
        """The handshake's step prefix: ``vg`` joins a group, ``vc`` a contact."""
        return "vg" if self.group_id else "vc"

    def to_url(self) -> str:
        """The link in the order and encoding Delta Chat 2.65 writes it."""
        parts = [f"https://i.delta.chat/#{self.fingerprint}", "v=3" if self.v3 else ""]
        if self.group_id:
            parts.append(f"x={self.group_id}")
        if self.invitenumber:
            parts.append(f"i={self.invitenumber}")
        parts += [f"s={self.auth}", f"a={_quote(self.addr)}"]
        parts.append(f"n={_name_param(self.name, 16 if self.group_id else 25)}")
        if self.group_id:
            parts.append(f"g={_name_param(self.group_name or '', 25)}")
        return "&".join(p for p in parts if p)

    @classmethod
    def parse(cls, text: str) -> Invite:
        """Read an invite link or ``OPENPGP4FPR:`` QR text; raises ``InviteError``."""
        text = text.strip()
        lowered = text.lower()
        prefix = next((p for p in INVITE_PREFIXES if lowered.startswith(p)), None)
        if prefix is not None:
            fingerprint, _, fragment = text[len(prefix) :].partition("&")
        elif lowered.startswith(OPENPGP4FPR):
            payload = text[len(OPENPGP4FPR) :].replace("%23", "#", 1)
            fingerprint, _, fragment = payload.partition("#")
        else:
            raise InviteError("not a Secure-Join invite")
        params: dict[str, str] = {}
        for part in fragment.split("&"):
            name, sep, value = part.partition("=")
            if sep:
                params[name] = value
        addr = _decoded(params.get("a", "")).strip().lower()
        if addr.count("@") != 1 or any(c.isspace() or c in "<>," for c in addr):
            raise InviteError("the invite has no valid address")
        auth = params.get("s", "")
        invitenumber = params.get("i") or params.get("j") or ""
        if not valid_token(auth) or (invitenumber and not valid_token(invitenumber)):
            raise InviteError("the invite has no valid tokens")
        group_id = params.get("x")
        if group_id is not None and not valid_token(group_id):
            raise InviteError("the invite's group id is not valid")
        return cls(
            fingerprint=_fingerprint(fingerprint),
            addr=addr,
            name=_name(params.get("n", "")),
            auth=auth,
            invitenumber=invitenumber,
            group_id=group_id,
            group_name=_name(params["g"]) if "g" in params else None,
            v3=params.get("v") == "3" or not invitenumber,
        )


def _name_param(name: str, length: int) -> str:
    """A name cut to ``length`` (``_`` marks the cut), encoded, spaces as ``+``."""
    if len(name) > length:
        name = name[: length - 1] + "_"
    return _quote(name).replace("%20", "+")


def _decoded(value: str) -> str:
    try:
        return urllib.parse.unquote(value.replace("+", "%20"), errors="strict")
    except UnicodeDecodeError as exc:
        raise InviteError("the invite is not UTF-8") from exc


def _name(value: str) -> str:
    name = _decoded(value)
    return name[:-1] + "…" if name.endswith("_") else name


# ================================================================ the handshake


def step_of(headers: Message) -> str | None:
    """The Secure-Join step a mail's (inner) headers name, or None: not a handshake."""
    step = _header(headers, "Secure-Join")
    if _header(headers, "Secure-Join-Invitenumber") is not None:
        return "vg-request" if (step or "").startswith("vg") else "vc-request"
    return None if step is None else step.lower()


def _header(headers: Message, name: str) -> str | None:
    value = headers.get(name)
    return None if value is None else str(value).strip()


@dataclasses.dataclass(frozen=True)
class Handshake:
    """A handshake mail, dealt with (or refused): never a chat message."""

    remote_id: str  #: its Message-ID
    conversation: ConversationId | None = None


class SecureJoin:
    """Both sides of the handshake for one mail account."""

    def __init__(
        self,
        client: Client,
        account: MailAccount,
        key: openpgp.MailKey,
        state: ConnectorState,
        peers: Peers,
        clock: Callable[[], int],
    ) -> None:
        self.client = client
        self.account = account
        self.key = key
        self.state = state
        self.peers = peers
        self.clock = clock
        #: ``await on_member_added(portal, address)``: a group invite was used
        self.on_member_added: Callable[[ConversationId, str], Awaitable[None]] | None = None

    @property
    def own(self) -> str:
        return self.account.address.lower()

    # ---------------------------------------------------------------- inviter

    def invite(self, name: str, group: tuple[str, str, ConversationId] | None = None) -> str:
        """A new invite link (one auth token each, good for one handshake);
        ``group``: (its id, its name, its portal) to invite into a group."""
        invite = Invite(
            fingerprint=self.key.fingerprint,
            addr=self.account.address,
            name=name,
            auth=new_token(),
            invitenumber=new_token(),
            group_id=group[0] if group else None,
            group_name=group[1] if group else None,
        )
        record = {"invitenumber": invite.invitenumber}
        if group:
            record["conversation"] = group[2]
        data = msgspec.json.encode(record).decode()
        self.state.put_token(NETWORK, AUTH, invite.auth, data, self.clock())
        return invite.to_url()

    def _invite_group(self, auth: str) -> ConversationId | None:
        """The group portal an invite of ours leads into (None: a 1:1 invite)."""
        for token, data, _at in self.state.tokens(NETWORK, AUTH):
            if token == auth:
                found = msgspec.json.decode(data).get("conversation")
                return ConversationId(found) if isinstance(found, str) else None
        return None

    def _invites(self) -> dict[str, str]:
        """Our live invites: auth token → invite number (expired ones are dropped)."""
        oldest = self.clock() - INVITE_TTL_MS
        found = {}
        for token, data, at_ms in self.state.tokens(NETWORK, AUTH):
            if at_ms < oldest:
                self.state.drop_token(NETWORK, AUTH, token)
            else:
                found[token] = str(msgspec.json.decode(data).get("invitenumber", ""))
        return found

    async def _on_request(self, mail: chatmail.ChatMail) -> None:
        """``vc-request`` (before v3): answer with our key, encrypted to theirs."""
        given = _header(mail.headers, "Secure-Join-Invitenumber") or ""
        numbers = [n for n in self._invites().values() if n]
        if matching_token(given, numbers) is None:
            log.warning("Secure-Join: vc-request with an unknown invite number")
            return
        if mail.autocrypt is None:
            log.warning("Secure-Join: vc-request without the joiner's key")
            return
        await self._send_encrypted(mail.from_addr, mail.autocrypt.key, "vc-auth-required")

    async def _on_request_pubkey(self, headers: Message, auth: str) -> None:
        """``vc-request-pubkey`` (opened with the password of our invite ``auth``)."""
        if matching_token(_header(headers, "Secure-Join-Auth") or "", [auth]) is None:
            log.warning("Secure-Join: vc-request-pubkey names another auth token")
            return
        addr = _from(headers)[1]
        await self._send_password_mail(
            addr, "vc-pubkey", auth, password(self.key.fingerprint, auth), signed=True
        )

    async def _on_request_with_auth(self, mail: chatmail.ChatMail) -> ConversationId | None:
        """``vc-request-with-auth``: the joiner proves it scanned our invite."""
        refused = self._refusal(mail)
        if refused:
            log.warning("Secure-Join: vc-request-with-auth refused: %s", refused)
            return None
        assert mail.autocrypt is not None  # checked by _refusal
        auth = matching_token(_header(mail.headers, "Secure-Join-Auth") or "", self._invites())
        if auth is None:
            log.warning("Secure-Join: vc-request-with-auth refused: no such invite")
            return None
        key = mail.autocrypt.key
        conversation = await self._verified(mail.from_addr, mail.from_name, mail.date_ms, key)
        group = self._invite_group(auth)
        if group is not None and self.on_member_added is not None:
            await self.on_member_added(group, mail.from_addr)  # vg-member-added, to everyone
            conversation = group
        else:
            await self._send_encrypted(mail.from_addr, key, "vc-contact-confirm")
        # used up only now: after a crash before this point the mail comes again
        self.state.drop_token(NETWORK, AUTH, auth)
        log.info("Secure-Join: %s joined with a verified key", mail.from_addr)
        return conversation

    def _refusal(self, mail: chatmail.ChatMail) -> str | None:
        """Why a ``*-request-with-auth`` is not to be trusted (None: it is)."""
        if not mail.encrypted or mail.signer is None:
            return "not encrypted and signed"
        try:
            claimed = _fingerprint(_header(mail.headers, "Secure-Join-Fingerprint") or "")
        except InviteError:
            return "no Secure-Join-Fingerprint"
        if claimed != mail.signer:
            return "signed by another key than the one it names"
        if mail.autocrypt is None or mail.autocrypt.key.fingerprint != mail.signer:
            return "its Autocrypt key is not the one that signed it"
        if not self._gossips_us(mail):
            return "not meant for us (our key is not gossiped)"
        return None

    def _gossips_us(self, mail: chatmail.ChatMail) -> bool:
        """Whether the sender gossiped our key to us (no surreptitious forwarding)."""
        gossip = parse_gossip(mail.gossip, [self.own])
        return self.own in gossip and gossip[self.own].fingerprint == self.key.fingerprint

    # ---------------------------------------------------------------- joiner

    async def join(self, qr: str) -> ConversationId:
        """Start joining ``qr``'s inviter; see ``EmailConnector.join``."""
        invite = Invite.parse(qr)
        if invite.addr == self.own:
            raise InviteError("this is our own invite")
        conversation = await self._joined_portal(invite)
        known = next(
            (k for k in self.peers.keys_of(invite.addr) if k.fingerprint == invite.fingerprint),
            None,
        )
        if known is not None:  # we have the inviter's key already: straight to the proof
            await self._inviter_verified(invite, known, None)
            return conversation
        self.state.put_token(NETWORK, JOINING, invite.auth, qr.strip(), self.clock())
        if invite.v3:
            await self._send_password_mail(
                invite.addr,
                "vc-request-pubkey",
                invite.auth,
                password(invite.fingerprint, invite.auth),
                signed=False,
            )
        else:
            await self._send_plain_request(invite)
        return conversation

    def _joining(self) -> list[Invite]:
        oldest = self.clock() - INVITE_TTL_MS
        found = []
        for token, qr, at_ms in self.state.tokens(NETWORK, JOINING):
            if at_ms < oldest:
                self.state.drop_token(NETWORK, JOINING, token)
                continue
            try:
                found.append(Invite.parse(qr))
            except InviteError:
                self.state.drop_token(NETWORK, JOINING, token)
        return found

    async def _inviter_verified(
        self, invite: Invite, key: openpgp.PublicKey, date_ms: int | None
    ) -> ConversationId:
        """The inviter's key matches the invite: verified; prove we scanned it
        (for a group invite, the inviter then adds us: ``vg-member-added``)."""
        await self._verified(invite.addr, invite.name, date_ms, key)
        conversation = await self._joined_portal(invite)
        extra = [
            ("Secure-Join-Auth", invite.auth),
            ("Secure-Join-Fingerprint", str(self.key.fingerprint)),
        ]
        if invite.group_id:
            extra.append(("Secure-Join-Group", invite.group_id))
        await self._send_encrypted(invite.addr, key, f"{invite.kind}-request-with-auth", extra)
        self.state.drop_token(NETWORK, JOINING, invite.auth)
        return conversation

    async def _on_pubkey(
        self, headers: Message, decrypted: openpgp.Decrypted, invite: Invite
    ) -> ConversationId | None:
        """``vc-pubkey`` (opened with the password of the invite we are joining)."""
        addr = _from(headers)[1]
        header = select_autocrypt_header(
            [str(v) for v in headers.get_all("Autocrypt", [])], invite.addr
        )
        if addr != invite.addr or header is None:
            log.warning("Secure-Join: vc-pubkey without the inviter's key")
            return None
        key = header.key
        try:
            signer = openpgp.verify(decrypted, [key])
        except openpgp.BadSignatureError:
            signer = None
        if key.fingerprint != invite.fingerprint or signer != invite.fingerprint:
            log.warning("Secure-Join: vc-pubkey does not carry the invite's key")
            return None
        return await self._inviter_verified(invite, key, None)

    async def _on_auth_required(self, mail: chatmail.ChatMail) -> ConversationId | None:
        """``vc-auth-required`` (before v3): the inviter's key, in a signed mail."""
        for invite in self._joining():
            if invite.addr != mail.from_addr or mail.signer != invite.fingerprint:
                continue
            if mail.autocrypt is None or mail.autocrypt.key.fingerprint != invite.fingerprint:
                continue
            if not self._gossips_us(mail):
                continue
            return await self._inviter_verified(invite, mail.autocrypt.key, mail.date_ms)
        log.warning("Secure-Join: vc-auth-required for no invite we are joining")
        return None

    def _on_contact_confirm(self, mail: chatmail.ChatMail) -> ConversationId | None:
        verified = self.peers.verified(mail.from_addr)
        if verified is None or mail.signer != verified.fingerprint or not self._gossips_us(mail):
            log.warning("Secure-Join: vc-contact-confirm from an unverified sender")
            return None
        self.state.put(f"securejoin:confirmed:{mail.from_addr}", str(self.clock()))
        return self.client.find_portal(NETWORK, mail.from_addr)

    # ---------------------------------------------------------------- both

    async def bring_in(self, mail: chatmail.ChatMail) -> Handshake | None:
        """Deal with a handshake mail read by ``chatmail.parse`` (None: not one)."""
        step = step_of(mail.headers)
        if step is None or step == "vg-member-added":
            return None  # a group's member-added is a chat message too
        conversation = None
        if step == "vc-request":
            await self._on_request(mail)
        elif step in ("vc-request-with-auth", "vg-request-with-auth"):
            conversation = await self._on_request_with_auth(mail)
        elif step in ("vc-auth-required", "vg-auth-required"):
            conversation = await self._on_auth_required(mail)
        elif step == "vc-contact-confirm":
            conversation = self._on_contact_confirm(mail)
        else:
            log.info("Secure-Join: step %.40r ignored", step)
        return Handshake(mail.message_id, conversation)

    async def bring_in_password_mail(self, raw: bytes) -> Handshake | None:
        """Deal with a mail encrypted with a Secure-Join password (None: not one
        that any of our invites or joins opens)."""
        try:
            outer = BytesParser(policy=email.policy.default).parsebytes(raw)
        except Exception:  # malformed: not ours to deal with
            return None
        armored = pgpmime.unwrap_encrypted(outer)
        if armored is None:
            return None
        own = self.key.fingerprint
        attempts: list[tuple[str, Invite | None, str]] = [
            (password(own, auth), None, auth) for auth in self._invites()
        ]
        attempts += [(password(i.fingerprint, i.auth), i, i.auth) for i in self._joining()]
        for secret, joining, auth in attempts:
            try:
                decrypted = openpgp.decrypt_with_password(armored, secret)
            except openpgp.NotEncryptedToUsError:
                continue
            except openpgp.MailCryptoError:
                return None
            headers = pgpmime.parse_inner(decrypted.data)
            message_id = chatmail.strip_brackets(
                str(headers.get("Message-ID") or outer.get("Message-ID") or "")
            )
            if not message_id:
                return None
            if self.state.handled(NETWORK, message_id) is not None:
                return Handshake(message_id)  # delivered again: answered before
            step = step_of(headers)
            conversation = None
            try:
                if joining is None and step == "vc-request-pubkey":
                    await self._on_request_pubkey(headers, auth)
                elif joining is not None and step == "vc-pubkey":
                    conversation = await self._on_pubkey(headers, decrypted, joining)
                else:
                    log.info("Secure-Join: password mail with step %.40r ignored", step)
            except chatmail.MailError as exc:
                log.warning("Secure-Join: unreadable password mail: %s", exc)
            return Handshake(message_id, conversation)
        return None

    async def _verified(
        self, addr: str, name: str, date_ms: int | None, key: openpgp.PublicKey
    ) -> ConversationId:
        """Keep ``key`` as ``addr``'s verified key and open the chat with them."""
        now = self.clock()
        header = AutocryptHeader(addr, key, PreferEncrypt.MUTUAL)
        peer = update_peer(self.peers.get(addr), addr, min(date_ms or now, now), header)
        self.peers.put(dataclasses.replace(peer, verified_key=key))
        return await self._portal(addr, name)

    async def _joined_portal(self, invite: Invite) -> ConversationId:
        """The chat an invite leads to: the inviter's 1:1, or the group's."""
        if invite.group_id is None:
            return await self._portal(invite.addr, invite.name)
        chat = f"group:{invite.group_id}"
        found = self.client.find_portal(NETWORK, chat)
        if found is not None:
            return found
        title = invite.group_name or invite.group_id
        return await self.client.open_portal(
            ev.Portal(NETWORK, chat, (invite.addr,), title, self.client.device)
        )

    async def _portal(self, addr: str, name: str) -> ConversationId:
        return await self.client.open_portal(
            ev.Portal(NETWORK, addr, (addr,), name or addr, self.client.device)
        )

    # ---------------------------------------------------------------- sending

    def _mail(
        self,
        to: str,
        step: str,
        extra: list[tuple[str, str]],
        *,
        autocrypt: bool,
        gossip: list[str] | None = None,
    ) -> chatmail.OutgoingMail:
        domain = self.own.partition("@")[2]
        own_header = AutocryptHeader(
            self.account.address, self.key.public_key, PreferEncrypt.MUTUAL
        )
        return chatmail.OutgoingMail(
            message_id=f"{new_token()}@{domain}",
            from_addr=self.account.address,
            from_name=self.account.display_name,
            recipients=[to],
            date=datetime.now(UTC),
            text=f"Secure-Join: {step}",
            subject="Secure-Join",
            autocrypt=own_header.to_value() if autocrypt else None,
            gossip=gossip or [],
            extra=[("Secure-Join", step), *extra],
        )

    async def _send_encrypted(
        self,
        to: str,
        key: openpgp.PublicKey,
        step: str,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        """A handshake mail encrypted to ``key`` and us, signed, uncompressed,
        with our key and ``key`` gossiped (Delta Chat checks its own is)."""
        mail = self._mail(
            to,
            step,
            extra or [],
            autocrypt=True,
            gossip=[AutocryptHeader(to, key).to_value()],
        )
        protected = pgpmime.protect_headers(
            chatmail.build(mail), outer_date=pgpmime.random_outer_date(mail.date)
        )
        armored = openpgp.encrypt_and_sign(protected.payload, [key], self.key, compress=False)
        await self._send(pgpmime.wrap_encrypted(armored, protected.outer_headers), to)

    async def _send_password_mail(
        self, to: str, step: str, auth: str, secret: str, *, signed: bool
    ) -> None:
        """A password mail (v3): only our key when ``signed``, no name, hidden recipients."""
        mail = self._mail(
            to,
            step,
            [("Secure-Join-Auth", auth)],
            autocrypt=signed,
        )
        mail.from_name, mail.recipients = "", []
        protected = pgpmime.protect_headers(
            chatmail.build(mail), outer_date=pgpmime.random_outer_date(mail.date)
        )
        armored = openpgp.encrypt_with_password(
            protected.payload, secret, signer=self.key if signed else None
        )
        await self._send(pgpmime.wrap_encrypted(armored, protected.outer_headers), to)

    async def _send_plain_request(self, invite: Invite) -> None:
        """``vc-request`` (before v3): in the clear, with our key, no name."""
        mail = self._mail(
            invite.addr,
            f"{invite.kind}-request",
            [("Secure-Join-Invitenumber", invite.invitenumber)],
            autocrypt=True,
        )
        mail.from_name = ""
        await self._send(chatmail.build(mail), invite.addr)

    async def _send(self, message: EmailMessage, to: str) -> None:
        try:
            await smtp.send(self.account, message, [to])
        except smtp.SmtpError as exc:
            if exc.permanent:
                log.warning("Secure-Join: %s refused the handshake mail: %s", to, exc)
                return
            raise ConnectionError(f"sending a Secure-Join mail: {exc}") from exc


def _from(headers: Message) -> tuple[str, str]:
    found = email.utils.getaddresses([str(v) for v in headers.get_all("From", [])])
    addresses = [(name, addr.lower()) for name, addr in found if "@" in addr]
    if len(addresses) != 1:
        raise chatmail.MailError("a handshake mail has exactly one From address")
    return addresses[0]
