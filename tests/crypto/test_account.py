"""Device accounts: keys, signed one-time and fallback keys, pickling."""

from __future__ import annotations

import msgspec
import pytest

from taube.crypto import DecryptionFailed, DeviceAccount
from taube.proto.ids import UserId
from taube.proto.keys import OneTimeKey
from taube.proto.signing import DOMAIN_ONE_TIME_KEY, b64decode, check_curve25519, verify

from .helpers import PICKLE_KEY, device_id

ALICE = UserId("alice@example.org")


def test_device_keys_are_the_account_keys_unsigned() -> None:
    account = DeviceAccount.create()
    device = device_id()
    keys = account.device_keys(ALICE, device)
    assert (keys.user, keys.device) == (ALICE, device)
    assert keys.curve25519 == account.curve25519
    assert keys.ed25519 == account.ed25519
    assert keys.signature == ""
    assert len(b64decode(account.curve25519)) == len(b64decode(account.ed25519)) == 32
    assert account.curve25519 in repr(account)


def test_one_time_keys_are_signed_by_the_device_key() -> None:
    account = DeviceAccount.create()
    device = device_id()
    keys = account.one_time_keys(ALICE, device, 5)
    assert len(keys) == 5
    assert len({key.key_id for key in keys}) == len({key.key for key in keys}) == 5
    for key in keys:
        assert (key.user, key.device, key.fallback) == (ALICE, device, False)
        verify(DOMAIN_ONE_TIME_KEY, key, account.ed25519, key.signature)
        check_curve25519(key.key)
        # valid on the wire (the server's decoder applies the patterns)
        assert msgspec.json.decode(msgspec.json.encode(key), type=OneTimeKey) == key


def test_unpublished_keys_come_again_until_marked_published() -> None:
    account = DeviceAccount.create()
    device = device_id()
    first = account.one_time_keys(ALICE, device, 3)
    again = account.one_time_keys(ALICE, device, 2)
    assert {key.key_id for key in first} < {key.key_id for key in again}
    assert len(again) == 5
    account.mark_keys_as_published()
    assert account.one_time_keys(ALICE, device, 0) == []


def test_more_keys_than_the_account_holds_is_an_error() -> None:
    account = DeviceAccount.create()
    with pytest.raises(ValueError, match="between"):
        account.one_time_keys(ALICE, device_id(), account.max_one_time_keys + 1)
    with pytest.raises(ValueError, match="between"):
        account.one_time_keys(ALICE, device_id(), -1)


def test_fallback_key_is_signed_and_marked() -> None:
    account = DeviceAccount.create()
    device = device_id()
    first = account.fallback_key(ALICE, device)
    assert first.fallback
    verify(DOMAIN_ONE_TIME_KEY, first, account.ed25519, first.signature)
    second = account.fallback_key(ALICE, device)
    assert second.key != first.key
    # a fallback signature does not pass for a one-time key (fallback is signed)
    as_otk = msgspec.structs.replace(second, fallback=False)
    with pytest.raises(Exception, match="signature"):
        verify(DOMAIN_ONE_TIME_KEY, as_otk, account.ed25519, as_otk.signature)


def test_pickle_round_trip() -> None:
    account = DeviceAccount.create()
    account.one_time_keys(ALICE, device_id(), 2)
    pickle = account.pickle(PICKLE_KEY)
    again = DeviceAccount.from_pickle(pickle, PICKLE_KEY)
    assert (again.curve25519, again.ed25519) == (account.curve25519, account.ed25519)
    assert len(again.one_time_keys(ALICE, device_id(), 0)) == 2


def test_pickle_needs_the_right_32_byte_key() -> None:
    account = DeviceAccount.create()
    pickle = account.pickle(PICKLE_KEY)
    with pytest.raises(DecryptionFailed):
        DeviceAccount.from_pickle(pickle, bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        account.pickle(bytes(16))
    damaged = pickle[:20] + ("A" if pickle[20] != "A" else "B") + pickle[21:]
    with pytest.raises(DecryptionFailed):
        DeviceAccount.from_pickle(damaged, PICKLE_KEY)
    with pytest.raises(DecryptionFailed):
        DeviceAccount.from_pickle("not base64 at all!", PICKLE_KEY)
