"""Secure-Join's pure parts: the invite link, the tokens, the step of a mail,
and where the verified key is kept. (Against Delta Chat:
``test_securejoin_functional.py``.)"""

from __future__ import annotations

import contextlib
from email.message import Message
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taube.connectors.email.autocrypt import PeerState, Recommendation, recommend
from taube.connectors.email.openpgp import Fingerprint, MailKey
from taube.connectors.email.peers import Peers
from taube.connectors.email.securejoin import (
    Invite,
    InviteError,
    matching_token,
    new_token,
    password,
    step_of,
    valid_token,
)
from taube.connectors.state import ConnectorState

FP = Fingerprint("11B477C7B2A3B63B51E4C6D60DB644B46E601D99")
#: what Delta Chat 2.65's ``get_qr_code()`` gave on this machine
DELTA_CHAT_QR = (
    "https://i.delta.chat/#11B477C7B2A3B63B51E4C6D60DB644B46E601D99&v=3"
    "&i=un16E-JqgkuvcQfm4BsOvBLd&s=5pCeNz9eU5EJl-0nF8uFTFNO&a=dora%40example.net&n=Dora"
)


def test_reads_delta_chats_invite() -> None:
    invite = Invite.parse(DELTA_CHAT_QR)
    assert invite == Invite(
        fingerprint=FP,
        addr="dora@example.net",
        name="Dora",
        auth="5pCeNz9eU5EJl-0nF8uFTFNO",
        invitenumber="un16E-JqgkuvcQfm4BsOvBLd",
        v3=True,
    )
    assert invite.to_url() == DELTA_CHAT_QR
    assert "5pCe" not in repr(invite)  # tokens are secrets


def test_writes_what_delta_chat_writes() -> None:
    invite = Invite(FP, "a-b@example.org", "Alice Liddell", auth="A" * 24, invitenumber="B" * 24)
    assert invite.to_url() == (
        f"https://i.delta.chat/#{FP}&v=3&i={'B' * 24}&s={'A' * 24}"
        "&a=a%2Db%40example.org&n=Alice+Liddell"
    )
    long = Invite(FP, "a@example.org", "x" * 30, auth="A" * 24, invitenumber="B" * 24)
    assert long.to_url().endswith("&n=" + "x" * 24 + "_")
    assert Invite.parse(long.to_url()).name == "x" * 24 + "…"


@pytest.mark.parametrize(
    "text",
    [
        DELTA_CHAT_QR.replace("https://i.delta.chat/#", "https://i.delta.chat#"),
        DELTA_CHAT_QR.replace("https://i.delta.chat/#", "HTTPS://I.DELTA.CHAT/#"),
        "OPENPGP4FPR:11B477C7B2A3B63B51E4C6D60DB644B46E601D99#v=3"
        "&i=un16E-JqgkuvcQfm4BsOvBLd&s=5pCeNz9eU5EJl-0nF8uFTFNO&a=dora%40example.net&n=Dora",
        "openpgp4fpr:11b477c7b2a3b63b51e4c6d60db644b46e601d99%23v=3"
        "&i=un16E-JqgkuvcQfm4BsOvBLd&s=5pCeNz9eU5EJl-0nF8uFTFNO&a=dora%40example.net&n=Dora",
        f"  {DELTA_CHAT_QR}\n",
    ],
)
def test_reads_the_other_spellings(text: str) -> None:
    assert Invite.parse(text) == Invite.parse(DELTA_CHAT_QR)


def test_v3_and_before() -> None:
    assert not Invite.parse(DELTA_CHAT_QR.replace("&v=3", "")).v3
    # an invite without an invite number can only be v3
    without = Invite.parse(DELTA_CHAT_QR.replace("&v=3", "").replace("i=", "z="))
    assert (without.v3, without.invitenumber) == (True, "")


def test_a_group_invite() -> None:
    invite = Invite.parse(
        f"https://i.delta.chat/#{FP}&v=3&x=grp1d-12345678&i={'B' * 24}&s={'A' * 24}"
        "&a=dora%40example.net&n=Dora&g=Book+club"
    )
    assert (invite.group_id, invite.group_name) == ("grp1d-12345678", "Book club")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "https://example.org/#" + DELTA_CHAT_QR.partition("#")[2],
        DELTA_CHAT_QR.replace(FP, FP[:-1]),  # 39 digits
        DELTA_CHAT_QR.replace(FP, FP[:-1] + "G"),
        DELTA_CHAT_QR.replace("&a=dora%40example.net", ""),
        DELTA_CHAT_QR.replace("dora%40example.net", "dora"),
        DELTA_CHAT_QR.replace("s=5pCeNz9eU5EJl-0nF8uFTFNO", "s=short"),
        DELTA_CHAT_QR.replace("s=5pCeNz9eU5EJl-0nF8uFTFNO", "s=" + "x" * 33),
        DELTA_CHAT_QR.replace("s=5pCeNz9eU5EJl-0nF8uFTFNO", "s=5pCeNz9eU5EJl%2B0nF8uFTFNO"),
        DELTA_CHAT_QR.replace("&s=5pCeNz9eU5EJl-0nF8uFTFNO", ""),
        DELTA_CHAT_QR.replace("n=Dora", "n=%FF"),
    ],
)
def test_refuses_what_is_no_invite(text: str) -> None:
    with pytest.raises(InviteError):
        Invite.parse(text)


@given(
    st.one_of(
        st.text(max_size=300),
        st.text(max_size=300).map(lambda t: "https://i.delta.chat/#" + t),
        st.text(max_size=300).map(lambda t: f"https://i.delta.chat/#{FP}&" + t),
        st.text(max_size=300).map(lambda t: f"OPENPGP4FPR:{FP}#a=a%40b.c&s={'A' * 24}&" + t),
    )
)
def test_parsing_anything_raises_only_invite_error(text: str) -> None:
    with contextlib.suppress(InviteError):
        Invite.parse(text)


@given(
    name=st.text(max_size=40).filter(lambda n: not n.endswith("_")),
    local=st.from_regex(r"[a-z0-9.+_-]{1,20}", fullmatch=True),
)
def test_what_it_writes_it_reads(name: str, local: str) -> None:
    invite = Invite(FP, f"{local}@example.org", name, auth=new_token(), invitenumber=new_token())
    again = Invite.parse(invite.to_url())
    assert again.name == (name if len(name) <= 25 else name[:24] + "…")
    assert again == Invite(FP, invite.addr, again.name, invite.auth, invite.invitenumber)


def test_tokens() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(valid_token(t) and len(t) == 24 for t in tokens)
    assert not valid_token("a" * 10)
    assert not valid_token("a/b" * 5)
    known = sorted(tokens)
    assert matching_token(known[50], known) == known[50]
    assert matching_token(known[50][:-1] + "!", known) is None
    assert matching_token("", known) is None
    assert matching_token(known[0], []) is None


def test_the_password() -> None:
    assert password(FP, "abc") == f"securejoin/{FP}/abc"


def headers(**values: str) -> Message:
    message = Message()
    for name, value in values.items():
        message[name.replace("_", "-")] = value
    return message


def test_the_step_of_a_mail() -> None:
    assert step_of(headers(Subject="hi")) is None
    assert step_of(headers(Secure_Join="vc-request-with-auth")) == "vc-request-with-auth"
    assert step_of(headers(Secure_Join=" VC-Pubkey ")) == "vc-pubkey"
    # the invite number makes a request, whatever Secure-Join says
    assert step_of(headers(Secure_Join_Invitenumber="x")) == "vc-request"
    assert step_of(headers(Secure_Join="vg-request", Secure_Join_Invitenumber="x")) == "vg-request"


def test_the_verified_key_is_kept_with_the_peer_and_wins(tmp_path: Path) -> None:
    state = ConnectorState(tmp_path / "state.db")
    peers = Peers(state)
    verified, other = MailKey.generate("d@example.net"), MailKey.generate("d@example.net")
    peers.put(PeerState("d@example.net", public_key=other.public_key))
    assert peers.verified("d@example.net") is None
    peers.put(
        PeerState("d@example.net", public_key=other.public_key, verified_key=verified.public_key)
    )
    again = Peers(ConnectorState(tmp_path / "state.db"))
    assert again.verified("d@example.net") == verified.public_key
    assert again.keys_of("d@example.net")[0] == verified.public_key
    advice = recommend({"d@example.net": again.get("d@example.net")})
    assert advice.recommendation is Recommendation.ENCRYPT
    assert advice.target_keys == {"d@example.net": verified.public_key}
    state.close()


def test_tokens_in_the_state(tmp_path: Path) -> None:
    state = ConnectorState(tmp_path / "state.db")
    state.put_token("email", "auth", "t1", "{}", 1)
    state.put_token("email", "auth", "t2", "{}", 2)
    state.put_token("email", "joining", "t3", "qr", 3)
    assert state.tokens("email", "auth") == [("t2", "{}", 2), ("t1", "{}", 1)]
    assert state.drop_token("email", "auth", "t1")
    assert not state.drop_token("email", "auth", "t1")  # used up already
    assert [t for t, _, _ in state.tokens("email", "auth")] == ["t2"]
    state.close()
