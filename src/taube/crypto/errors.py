"""The errors of ``taube.crypto``: one root, one class per thing to do about it.

Every failure of the end-to-end layer is a ``CryptoError``, so a client can
catch one class around a decryption and show "could not decrypt" without
ever showing or acting on unverified data. The subclasses tell the client
*what to do next* (wait for a key, warn about a device, drop a replay), not
how the cryptography failed::

    CryptoError
     ├── BadKey               a public key is malformed, all-zero or of low order
     ├── UntrustedDevice      a certificate or signature does not verify
     ├── UnknownSession       no session (yet) to decrypt with: wait for the key
     ├── SessionExpired       an outbound Megolm session must be rotated first
     ├── DecryptionFailed     ciphertext tampered with, truncated or for another key
     │    └── WrongRecoveryCode   the recovery code does not open the backup
     ├── ReplayedMessage      this (session, message index) was accepted before
     └── BadPayload           decrypted, but malformed or bound to another
                              sender, device, conversation or recipient

Messages never contain plaintext or secret key material; public keys and ids
may appear.
"""

from __future__ import annotations


class CryptoError(Exception):
    """The root of every error raised by ``taube.crypto``."""


class BadKey(CryptoError):
    """A public key is malformed, all-zero or of low order.

    Such keys make a Diffie-Hellman secret predictable, so they are refused
    before any session is built with them.
    """


class UntrustedDevice(CryptoError):
    """A signature does not verify: a device certificate not made by the
    user's identity key, a one-time key not made by its device, or a key
    confirmation (SAS MAC) that does not match. Give the device no keys."""


class UnknownSession(CryptoError):
    """There is no session to decrypt or encrypt with.

    For Megolm: the room key has not arrived (yet), or only a later part of
    the ratchet is known. For Olm: no session with that device exists; claim
    a one-time key and create one.
    """


class SessionExpired(CryptoError):
    """An outbound Megolm session reached its message or age limit.

    Rotating is mandatory (DESIGN §5); encrypting more with the old session
    would widen what one leaked session key reveals.
    """


class DecryptionFailed(CryptoError):
    """Authentication failed: the ciphertext was changed, cut short or made
    for another key. Nothing of the plaintext was released."""


class WrongRecoveryCode(DecryptionFailed):
    """The recovery code is malformed or does not open the backup."""


class ReplayedMessage(CryptoError):
    """A Megolm message with a ``(session_id, message_index)`` seen before.

    Megolm itself decrypts a replay again without complaint, so the receiver
    keeps the pairs it accepted; show the message once only.
    """


class BadPayload(CryptoError):
    """The plaintext is not a valid payload, or it names a different sender,
    device, conversation, message id or recipient than the envelope it came
    in: a forwarded, misrouted or spliced message."""
