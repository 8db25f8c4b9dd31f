"""Chat messages as mails, in the format Delta Chat reads and writes.

``build`` makes the mail for one chat message (before encryption: a whole
message with every header, which ``pgpmime.protect_headers`` then splits);
``parse`` turns a received mail (decrypted first, if it is encrypted) into a
``ChatMail``. Neither does I/O. The headers are those of the chat-over-mail
convention Delta Chat uses (``Chat-Version``, ``Chat-Group-ID``,
``Chat-Group-Name``, ``Chat-Group-Member-Added/Removed``,
``Chat-Disposition-Notification-To``), with ordinary ``Message-ID`` /
``In-Reply-To`` / ``References`` threading, so a plain mail client shows a
readable thread too.
"""

from __future__ import annotations

import dataclasses
import email.policy
import email.utils
import mimetypes
from collections.abc import Callable, Iterable
from datetime import datetime
from email.message import EmailMessage, Message
from email.parser import BytesParser

from taube.connectors.email import openpgp, pgpmime
from taube.connectors.email.autocrypt import (
    AutocryptHeader,
    AutocryptHeaderError,
    select_autocrypt_header,
)

POLICY = email.policy.SMTP
CHAT_VERSION = "1.0"
#: what a mail may weigh, all parts together (larger ones stay on the server)
MAX_MAIL_BYTES = 25 * 1024 * 1024


class MailError(Exception):
    """A mail that cannot be read as a chat message (it is kept aside)."""


@dataclasses.dataclass(frozen=True)
class MailAttachment:
    filename: str
    content_type: str
    data: bytes = dataclasses.field(repr=False)


@dataclasses.dataclass
class ChatMail:
    """A received mail, as far as a chat needs it."""

    message_id: str  #: without the angle brackets
    from_addr: str  #: lower case
    from_name: str
    recipients: list[str]  #: To and Cc, lower case
    date_ms: int | None
    subject: str
    text: str
    attachments: list[MailAttachment]
    chat_version: str | None = None
    group_id: str | None = None
    group_name: str | None = None
    member_added: str | None = None
    member_removed: str | None = None
    in_reply_to: str | None = None
    references: list[str] = dataclasses.field(default_factory=list)
    disposition_to: str | None = None
    #: a read receipt: the Message-IDs it confirms
    read_receipt_for: list[str] = dataclasses.field(default_factory=list)
    autocrypt: AutocryptHeader | None = None
    gossip: list[str] = dataclasses.field(default_factory=list)
    encrypted: bool = False
    #: the primary key that signed it, verified (None: unsigned or unknown signer)
    signer: openpgp.Fingerprint | None = None
    auto_submitted: bool = False
    #: the headers the chat reads (the protected inner ones for encrypted mail)
    headers: Message = dataclasses.field(default_factory=Message, repr=False)

    @property
    def is_chat(self) -> bool:
        return self.chat_version is not None


#: Delta Chat puts this before an edited text (after a quote of the old one)
EDITED_PREFIX = "\u270f\ufe0f"
#: the text of a Delta Chat delete-for-everyone mail
DELETED_TEXT = "\U0001f6ae"


@dataclasses.dataclass(frozen=True)
class Change:
    """A mail that changes earlier messages, as Delta Chat sends them:
    ``Chat-Edit`` (the new text), ``Chat-Delete`` (deleted for everyone) or a
    reaction (``Content-Disposition: reaction``, the sender's whole set of
    reactions, space-separated; empty: none left)."""

    kind: str  #: edit, delete or reaction
    targets: tuple[str, ...]  #: their Message-IDs
    text: str = ""


def change_of(mail: ChatMail) -> Change | None:
    """What ``mail`` changes (None: it is a message of its own)."""
    edit = mail.headers.get("Chat-Edit")
    if edit is not None:
        return Change("edit", (strip_brackets(str(edit)),), edited_text(mail.text))
    deleted = mail.headers.get("Chat-Delete")
    if deleted is not None:
        return Change("delete", tuple(strip_brackets(t) for t in str(deleted).split()))
    disposition = str(mail.headers.get("Content-Disposition") or "")
    if disposition.split(";", maxsplit=1)[0].strip().lower() == "reaction" and mail.in_reply_to:
        return Change("reaction", (mail.in_reply_to,), " ".join(mail.text.split()))
    return None


def edited_text(text: str) -> str:
    """The new text of an edit: without the quote of the old one and the pencil."""
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and (lines[0].startswith(">") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines).strip().removeprefix(EDITED_PREFIX).strip()


def strip_brackets(value: str) -> str:
    return value.strip().removeprefix("<").removesuffix(">").strip()


def new_message_id(local: str, domain: str) -> str:
    return f"{local}@{domain}"


# ================================================================ building


@dataclasses.dataclass
class OutgoingMail:
    """One chat message to send."""

    message_id: str  #: without angle brackets
    from_addr: str
    from_name: str
    recipients: list[str]
    date: datetime
    text: str
    attachments: list[MailAttachment] = dataclasses.field(default_factory=list)
    group_id: str | None = None
    group_name: str | None = None
    member_added: str | None = None
    member_removed: str | None = None
    in_reply_to: str | None = None
    references: list[str] = dataclasses.field(default_factory=list)
    #: ask for read receipts (sent to this address)
    disposition_to: str | None = None
    autocrypt: str | None = None  #: our Autocrypt header's value
    gossip: list[str] = dataclasses.field(default_factory=list)  #: Autocrypt-Gossip values
    #: extra headers (Secure-Join's)
    extra: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    subject: str = ""
    #: the text part's Content-Disposition (Delta Chat's reactions: ``reaction``)
    disposition: str | None = None


def build(mail: OutgoingMail) -> EmailMessage:
    """The whole (unencrypted) mail for ``mail``."""
    msg = EmailMessage(policy=POLICY)
    msg["From"] = email.utils.formataddr((mail.from_name, mail.from_addr))
    msg["To"] = ", ".join(mail.recipients) if mail.recipients else '"hidden-recipients": ;'
    msg["Date"] = email.utils.format_datetime(mail.date)
    msg["Message-ID"] = f"<{mail.message_id}>"
    msg["Subject"] = mail.subject or _subject(mail)
    msg["Chat-Version"] = CHAT_VERSION
    if mail.group_id is not None:
        msg["Chat-Group-ID"] = mail.group_id
        msg["Chat-Group-Name"] = mail.group_name or ""
    if mail.member_added:
        msg["Chat-Group-Member-Added"] = mail.member_added
    if mail.member_removed:
        msg["Chat-Group-Member-Removed"] = mail.member_removed
    if mail.in_reply_to:
        msg["In-Reply-To"] = f"<{mail.in_reply_to}>"
    references = [*mail.references]
    if mail.in_reply_to and mail.in_reply_to not in references:
        references.append(mail.in_reply_to)
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references[-20:])
    if mail.disposition_to:
        msg["Chat-Disposition-Notification-To"] = mail.disposition_to
    if mail.autocrypt:
        msg["Autocrypt"] = mail.autocrypt
    for value in mail.gossip:
        msg["Autocrypt-Gossip"] = value
    for name, value in mail.extra:
        msg[name] = value
    msg.set_content(mail.text or "", subtype="plain", charset="utf-8", disposition=mail.disposition)
    for attachment in mail.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        msg.add_attachment(
            attachment.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return msg


def _subject(mail: OutgoingMail) -> str:
    if mail.group_name:
        return mail.group_name
    return f"Message from {mail.from_name or mail.from_addr}"


def encrypt(
    msg: EmailMessage,
    recipients: Iterable[openpgp.PublicKey],
    key: openpgp.MailKey,
    now: datetime,
) -> EmailMessage:
    """``msg`` as an encrypted, signed PGP/MIME mail with protected headers."""
    protected = pgpmime.protect_headers(msg, outer_date=pgpmime.random_outer_date(now))
    armored = openpgp.encrypt_and_sign(protected.payload, list(recipients), key)
    return pgpmime.wrap_encrypted(armored, protected.outer_headers)


# ================================================================ parsing


def parse(
    raw: bytes,
    key: openpgp.MailKey,
    keys_of: Callable[[str], list[openpgp.PublicKey]],
) -> ChatMail:
    """Read a received mail (decrypting it with ``key``). ``keys_of``: the
    known keys of an address, to check the signature. Raises ``MailError``
    for what cannot be read."""
    if len(raw) > MAX_MAIL_BYTES:
        raise MailError(f"the mail is {len(raw) // (1024 * 1024)} MB (at most 25 MB)")
    try:
        outer = BytesParser(policy=email.policy.default).parsebytes(raw)
    except Exception as exc:  # the parser is lenient; anything it raises is malformed input
        raise MailError(f"malformed mail: {exc}") from exc
    armored = pgpmime.unwrap_encrypted(outer)
    if armored is None:
        return _read(outer, outer, encrypted=False, signer=None)
    try:
        decrypted = openpgp.decrypt(armored, key)
    except openpgp.MailCryptoError as exc:
        raise MailError(f"cannot decrypt: {exc}") from exc
    inner = pgpmime.parse_inner(decrypted.data)
    headers = inner if pgpmime.has_header_protection(inner) else _merged(outer, inner)
    from_addr = _from(headers)[1]
    candidates = list(keys_of(from_addr))
    header = _autocrypt(headers, from_addr)
    if header is not None:
        candidates.append(header.key)
    try:
        signer = openpgp.verify(decrypted, candidates)
    except openpgp.BadSignatureError as exc:
        raise MailError(f"bad signature: {exc}") from exc
    return _read(headers, inner, encrypted=True, signer=signer)


def _merged(outer: Message, inner: Message) -> Message:
    """Headers of an encrypted mail without header protection: the inner
    ones where present (they were signed), else the outer ones."""
    merged = Message(policy=email.policy.default)
    for name, value in outer.items():
        if inner.get(name) is None:
            merged[name] = value
    for name, value in inner.items():
        merged[name] = value
    return merged


def _from(headers: Message) -> tuple[str, str]:
    found = email.utils.getaddresses([str(v) for v in headers.get_all("From", [])])
    addresses = [(name, addr.lower()) for name, addr in found if "@" in addr]
    if len(addresses) != 1:
        raise MailError("a chat mail has exactly one From address")
    return addresses[0]


def _autocrypt(headers: Message, from_addr: str) -> AutocryptHeader | None:
    try:
        return select_autocrypt_header(
            [str(v) for v in headers.get_all("Autocrypt", [])], from_addr
        )
    except AutocryptHeaderError:
        return None


def _header(headers: Message, name: str) -> str | None:
    value = headers.get(name)
    return None if value is None else str(value).strip()


def _read(
    headers: Message, body: Message, *, encrypted: bool, signer: openpgp.Fingerprint | None
) -> ChatMail:
    try:
        from_name, from_addr = _from(headers)
        recipients = [
            addr.lower()
            for _, addr in email.utils.getaddresses(
                [str(v) for v in (*headers.get_all("To", []), *headers.get_all("Cc", []))]
            )
            if "@" in addr
        ]
        message_id = strip_brackets(_header(headers, "Message-ID") or "")
        if not message_id:
            raise MailError("the mail has no Message-ID")
        date = _header(headers, "Date")
        date_ms = None
        if date:
            try:
                date_ms = int(email.utils.parsedate_to_datetime(date).timestamp() * 1000)
            except (TypeError, ValueError):
                date_ms = None
        text, attachments, receipts = _content(body)
    except MailError:
        raise
    except Exception as exc:  # a header or part the email package cannot read
        raise MailError(f"malformed mail: {type(exc).__name__}: {exc}") from exc
    in_reply_to = _header(headers, "In-Reply-To")
    return ChatMail(
        message_id=message_id,
        from_addr=from_addr,
        from_name=from_name,
        recipients=recipients,
        date_ms=date_ms,
        subject=_header(headers, "Subject") or "",
        text=text,
        attachments=attachments,
        chat_version=_header(headers, "Chat-Version"),
        group_id=_header(headers, "Chat-Group-ID"),
        group_name=_header(headers, "Chat-Group-Name"),
        member_added=_lower(_header(headers, "Chat-Group-Member-Added")),
        member_removed=_lower(_header(headers, "Chat-Group-Member-Removed")),
        in_reply_to=strip_brackets(in_reply_to.split()[0]) if in_reply_to else None,
        references=[strip_brackets(r) for r in (_header(headers, "References") or "").split()],
        disposition_to=_header(headers, "Chat-Disposition-Notification-To"),
        read_receipt_for=receipts,
        autocrypt=_autocrypt(headers, from_addr),
        gossip=[str(v) for v in headers.get_all("Autocrypt-Gossip", [])],
        encrypted=encrypted,
        signer=signer,
        auto_submitted=(_header(headers, "Auto-Submitted") or "no").lower() != "no",
        headers=headers,
    )


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def _content(msg: Message) -> tuple[str, list[MailAttachment], list[str]]:
    """The text, the attachments, and (for a read receipt) the ids it confirms."""
    texts: list[str] = []
    attachments: list[MailAttachment] = []
    receipts: list[str] = []
    if msg.get_content_type() == "multipart/report":
        for part in msg.walk():
            if part.get_content_type() == "message/disposition-notification":
                receipts.extend(_disposition_ids(part))
        return "", [], receipts
    for part in msg.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        filename = part.get_filename()
        disposition = part.get_content_disposition()
        if content_type == "text/plain" and disposition != "attachment" and not filename:
            texts.append(_text(part))
        elif content_type == "text/html" and disposition != "attachment" and not filename:
            continue  # the text/plain alternative is used
        elif content_type in ("application/pgp-keys", "text/rfc822-headers") and not filename:
            continue
        else:
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                name = filename or f"attachment{mimetypes.guess_extension(content_type) or ''}"
                attachments.append(MailAttachment(_safe_name(name), content_type, data))
    return _without_signature("\n\n".join(t for t in texts if t.strip())), attachments, receipts


def _text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")


def _disposition_ids(part: Message) -> list[str]:
    found = []
    payload = part.get_payload()
    blocks = payload if isinstance(payload, list) else [part]
    for block in blocks:
        text = block.as_string() if isinstance(block, Message) else str(block)
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip().lower() == "original-message-id" and value.strip():
                found.append(strip_brackets(value))
    return found


def _without_signature(text: str) -> str:
    body, sep, _signature = text.partition("\n-- \n")
    return (body if sep else text).strip()


def _safe_name(name: str) -> str:
    """A file name without directories or control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip(". ")
    return cleaned[:200] or "attachment"
