"""Keys against a real Delta Chat core (``deltachat-rpc-server``), without a mail server.

Delta Chat accepts our key as a key-contact from a vCard, and its own key
(from its vCard and its Secure-Join QR code) parses here, advertises SEIPD v2
and survives an Autocrypt header. Mail in both directions needs IMAP and SMTP
and is tested with the connector.
"""

from __future__ import annotations

import base64
import re
import shutil
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from deltachat_rpc_client import Account, DeltaChat, Rpc

from taube.connectors.email.autocrypt import AutocryptHeader, PreferEncrypt
from taube.connectors.email.openpgp import MailKey, PublicKey, decrypt, encrypt_and_sign
from tests.conftest import missing_service

DC_ADDR = "dcuser@example.org"


def rpc_server() -> str:
    beside_python = Path(sys.executable).parent / "deltachat-rpc-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("deltachat-rpc-server")
    if found is None:
        missing_service("deltachat-rpc-server is not installed")
    return found


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    accounts = tmp_path_factory.mktemp("deltachat")
    rpc = Rpc(accounts_dir=str(accounts), rpc_server_path=rpc_server())
    try:
        with rpc:
            account = DeltaChat(rpc).add_account()
            account.add_pseudo_transport(DC_ADDR)  # no server: keys only
            account.set_config("configured_addr", DC_ADDR)
            yield account
    finally:
        # the client closes stdin only: reap the process and close its other pipes
        rpc.process.wait(timeout=30)
        for pipe in (rpc.process.stdout, rpc.process.stderr):
            if pipe is not None:
                pipe.close()


def vcard_of(addr: str, key: PublicKey) -> str:
    keydata = base64.b64encode(key.to_bytes()).decode()
    return (
        "BEGIN:VCARD\r\nVERSION:4.0\r\n"
        f"EMAIL:{addr}\r\nFN:{addr}\r\n"
        f"KEY:data:application/pgp-keys;base64\\,{keydata}\r\n"
        "END:VCARD\r\n"
    )


def delta_chats_key(account: Account) -> PublicKey:
    vcard = account.make_vcard([account.self_contact])
    match = re.search(r"^KEY:data:application/pgp-keys;base64\\,(\S+)\r?$", vcard, re.M)
    assert match is not None, vcard
    return PublicKey.from_bytes(base64.b64decode(match.group(1)))


def test_delta_chat_takes_our_key_as_a_key_contact(account: Account) -> None:
    ours = MailKey.generate("taube@example.org")
    [contact] = account.import_vcard(vcard_of("taube@example.org", ours.public_key))
    snapshot = contact.get_snapshot()
    assert snapshot.is_key_contact
    assert snapshot.e2ee_avail
    assert snapshot.address == "taube@example.org"


def test_delta_chats_key_parses_and_matches_its_qr_code(account: Account) -> None:
    key = delta_chats_key(account)
    assert key.supports_seipd_v2
    assert f"<{DC_ADDR}>" in key.user_ids
    qr = account.get_qr_code()
    fingerprint = urllib.parse.urlsplit(qr).fragment.split("&")[0]
    assert fingerprint == key.fingerprint


def test_delta_chats_key_in_an_autocrypt_header(account: Account) -> None:
    key = delta_chats_key(account)
    value = AutocryptHeader(DC_ADDR, key, PreferEncrypt.MUTUAL).to_value()
    assert AutocryptHeader.parse(value).key == key


def test_we_encrypt_to_delta_chats_key(account: Account) -> None:
    ours = MailKey.generate("taube@example.org")
    armored = encrypt_and_sign(b"hi", [delta_chats_key(account)], ours)
    assert decrypt(armored, ours).data == b"hi"  # the copy to self
