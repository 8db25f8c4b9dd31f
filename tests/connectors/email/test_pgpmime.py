"""PGP/MIME with RFC 9788 header protection, in the layout Delta Chat 2.65 writes."""

from __future__ import annotations

import base64
import email.policy
import email.utils
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from taube.connectors.email.autocrypt import AutocryptHeader, PreferEncrypt
from taube.connectors.email.openpgp import MailKey, decrypt, encrypt_and_sign, verify
from taube.connectors.email.pgpmime import (
    HIDDEN_RECIPIENTS,
    has_header_protection,
    hp_outer_headers,
    parse_inner,
    protect_headers,
    random_outer_date,
    unwrap_encrypted,
    wrap_encrypted,
)

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
OUTER_DATE = datetime(2026, 12, 3, 8, 30, 0, tzinfo=UTC)
ARMORED = "-----BEGIN PGP MESSAGE-----\r\n\r\nwV4DAAAA\r\n=abcd\r\n-----END PGP MESSAGE-----\r\n"


@pytest.fixture(scope="module")
def alice() -> MailKey:
    return MailKey.generate("alice@example.org")


@pytest.fixture(scope="module")
def bob() -> MailKey:
    return MailKey.generate("bob@example.org")


def chat_message(alice: MailKey) -> EmailMessage:
    inner = EmailMessage(policy=email.policy.SMTP)
    inner["From"] = "Alice <alice@example.org>"
    inner["To"] = "bob@example.org, carol@example.org"
    inner["Subject"] = "Lunch plans"
    inner["Date"] = email.utils.format_datetime(NOW)
    inner["Message-ID"] = "<Mr.abc123@example.org>"
    inner["In-Reply-To"] = "<Mr.xyz@example.org>"
    inner["Chat-Version"] = "1.0"
    inner["Chat-Group-ID"] = "kP2sQ8vR"
    inner["Chat-Group-Name"] = "Lunch"
    inner["Autocrypt"] = AutocryptHeader(
        "alice@example.org", alice.public_key, PreferEncrypt.MUTUAL
    ).to_value()
    inner.set_content("Noon at the usual place?")
    return inner


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=email.policy.default).parsebytes(raw)


def test_only_delta_chats_outer_headers_stay_outside(alice: MailKey) -> None:
    protected = protect_headers(chat_message(alice), outer_date=OUTER_DATE)
    assert protected.outer_headers == (
        ("From", "alice@example.org"),
        ("Date", "Thu, 03 Dec 2026 08:30:00 +0000"),
        ("Message-ID", "<Mr.abc123@example.org>"),
        ("To", HIDDEN_RECIPIENTS),
        ("Subject", "[...]"),
        ("Chat-Version", "1.0"),
    )


def test_the_inner_part_keeps_everything_and_copies_the_outer_headers(alice: MailKey) -> None:
    original = chat_message(alice)
    before = original.as_bytes()
    protected = protect_headers(original, outer_date=OUTER_DATE)
    assert original.as_bytes() == before  # not changed in place
    inner = parse_inner(protected.payload)
    assert inner["Subject"] == "Lunch plans"
    assert inner["From"] == "Alice <alice@example.org>"
    assert inner["Chat-Group-ID"] == "kP2sQ8vR"
    assert inner["In-Reply-To"] == "<Mr.xyz@example.org>"
    assert AutocryptHeader.parse(str(inner["Autocrypt"])).key == alice.public_key
    assert has_header_protection(inner)
    assert inner.get_param("protected-headers") == "v1"
    assert inner.get_param("hp") == "cipher"
    assert hp_outer_headers(inner) == list(protected.outer_headers)
    assert inner.get_content().strip() == "Noon at the usual place?"
    assert b"\r\n" in protected.payload


def test_the_inner_message_needs_a_sender_and_an_id() -> None:
    inner = EmailMessage()
    inner["From"] = "a@example.org"
    with pytest.raises(ValueError, match="Message-ID"):
        protect_headers(inner, outer_date=OUTER_DATE)
    inner["Message-ID"] = "<x@example.org>"
    del inner["From"]
    inner["From"] = "a@example.org, b@example.org"
    with pytest.raises(ValueError, match="one From"):
        protect_headers(inner, outer_date=OUTER_DATE)


def test_the_outer_date_lies_up_to_six_days_back() -> None:
    for _ in range(50):
        date = random_outer_date(NOW)
        assert NOW - timedelta(days=6) < date <= NOW
        assert date.tzinfo == UTC
        assert date.microsecond == 0


def test_wrap_and_unwrap(alice: MailKey) -> None:
    protected = protect_headers(chat_message(alice), outer_date=OUTER_DATE)
    mail = wrap_encrypted(ARMORED, protected.outer_headers)
    raw = mail.as_bytes()
    outer = parse(raw)
    assert outer.get_content_type() == "multipart/encrypted"
    assert outer.get_param("protocol") == "application/pgp-encrypted"
    assert b'\r\nTo: "hidden-recipients": ;\r\n' in raw
    assert outer["To"].groups[0].display_name == "hidden-recipients"
    assert outer["To"].addresses == ()
    assert outer["Subject"] == "[...]"
    assert outer["MIME-Version"] == "1.0"
    for absent in ("Autocrypt", "Chat-Group-ID", "In-Reply-To", "Autocrypt-Gossip"):
        assert absent not in outer
    version, data = outer.iter_parts()
    assert version.get_content_type() == "application/pgp-encrypted"
    assert version.get_content() == b"Version: 1\r\n"
    assert data.get_content_type() == "application/octet-stream"
    assert unwrap_encrypted(outer) == ARMORED
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_a_full_round_trip_through_openpgp(alice: MailKey, bob: MailKey) -> None:
    protected = protect_headers(chat_message(alice), outer_date=random_outer_date(NOW))
    armored = encrypt_and_sign(protected.payload, [bob.public_key], alice)
    raw = wrap_encrypted(armored, protected.outer_headers).as_bytes()

    received = parse(raw)
    found = unwrap_encrypted(received)
    assert found is not None
    decrypted = decrypt(found, bob)
    assert verify(decrypted, [alice.public_key]) == alice.fingerprint
    inner = parse_inner(decrypted.data)
    assert inner["Subject"] == "Lunch plans"
    assert inner["Chat-Group-Name"] == "Lunch"
    assert dict(hp_outer_headers(inner))["From"] == received["From"]


def test_plain_mail_is_not_pgp_mime() -> None:
    plain = EmailMessage()
    plain.set_content("hello")
    assert unwrap_encrypted(plain) is None
    mixed = EmailMessage()
    mixed.set_content("hello")
    mixed.add_attachment(b"data", maintype="application", subtype="octet-stream")
    assert unwrap_encrypted(mixed) is None


def test_the_wrong_part_types_are_not_pgp_mime() -> None:
    mail = wrap_encrypted(ARMORED, [("From", "a@example.org")])
    version, _data = mail.iter_parts()
    version.replace_header("Content-Type", "text/plain")
    assert unwrap_encrypted(parse(mail.as_bytes())) is None


def test_the_microsoft_mixed_up_structure_is_accepted() -> None:
    raw = (
        b"From: a@example.org\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\n\r\n"
        b"--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(ARMORED.encode())
        + b"\r\n--b--\r\n"
    )
    assert unwrap_encrypted(parse(raw)) == ARMORED


def test_an_inner_message_without_hp_is_legacy() -> None:
    inner = parse_inner(b"From: a@example.org\r\nContent-Type: text/plain\r\n\r\nhi\r\n")
    assert not has_header_protection(inner)
    assert hp_outer_headers(inner) == []
