"""End-to-end encryption for taube clients, on vodozemac (Olm and Megolm).

No network and no storage: every object pickles to a string sealed with a
32-byte key the client keeps, and every check of DESIGN §4-5 that belongs to
the receiving side happens here. Split by operation (as in mautrix):

- ``identity``: the user's identity key, device certificates
  (``verify_device`` → ``VerifiedDevice``, the only way into the rest)
- ``account``: a device's Olm keys, signed one-time and fallback keys
- ``olm``: pairwise sessions and to-device messages
- ``megolm``: conversation sessions, rotation, replay-checked decryption
- ``key_share``: room keys over Olm, accepted only from their creator
- ``payload``: the plaintexts and their binding to the envelope
- ``replay``: the seen ``(session_id, message_index)`` pairs
- ``verification``: safety number, emoji/decimal SAS, QR payload
- ``attachments``: streaming AES-256-GCM file encryption, hash-checked
- ``backup``: recovery code and the argon2id-wrapped identity key backup

Errors: everything raised on bad input is a ``CryptoError`` (tree in
``taube.crypto.errors``); ``ValueError`` / ``RuntimeError`` mean a
programming error (a wrong pickle key length, an encryptor used twice).
"""

from taube.crypto.account import DeviceAccount
from taube.crypto.attachments import (
    AttachmentEncryptor,
    AttachmentKey,
    adecrypt_attachment,
    decrypt_attachment,
    decrypt_to_path,
    encrypt_file,
)
from taube.crypto.backup import (
    IdentityBackup,
    KdfParams,
    RecoveryCode,
    code_key,
    new_recovery_code,
    unwrap_identity_key,
    wrap_identity_key,
)
from taube.crypto.errors import (
    BadKey,
    BadPayload,
    CryptoError,
    DecryptionFailed,
    ReplayedMessage,
    SessionExpired,
    UnknownSession,
    UntrustedDevice,
    WrongRecoveryCode,
)
from taube.crypto.identity import (
    IdentityKeyPair,
    VerifiedDevice,
    verify_device,
    verify_identity_key,
)
from taube.crypto.key_share import accept_room_key, share_room_key
from taube.crypto.megolm import (
    MAX_AGE_MS,
    MAX_MESSAGES,
    DecryptedMessage,
    ExportedRoomKey,
    GroupPlaintext,
    InboundGroupInfo,
    InboundGroupStore,
    MegolmCiphertext,
    OutboundGroup,
)
from taube.crypto.olm import OlmCiphertext, OlmMachine
from taube.crypto.payload import (
    MEGOLM_ALGORITHM,
    TYPE_ROOM_KEY,
    MessagePayload,
    RoomKey,
    ToDevicePayload,
    check_binding,
    check_to_device_binding,
    decode_payload,
    encode_payload,
    room_key_of,
)
from taube.crypto.replay import SeenIndexes
from taube.crypto.verification import (
    SAS_EMOJI,
    EstablishedSas,
    SasVerification,
    VerificationQr,
    format_safety_number,
    safety_number,
)

__all__ = [
    "MAX_AGE_MS",
    "MAX_MESSAGES",
    "MEGOLM_ALGORITHM",
    "SAS_EMOJI",
    "TYPE_ROOM_KEY",
    "AttachmentEncryptor",
    "AttachmentKey",
    "BadKey",
    "BadPayload",
    "CryptoError",
    "DecryptedMessage",
    "DecryptionFailed",
    "DeviceAccount",
    "EstablishedSas",
    "ExportedRoomKey",
    "GroupPlaintext",
    "IdentityBackup",
    "IdentityKeyPair",
    "InboundGroupInfo",
    "InboundGroupStore",
    "KdfParams",
    "MegolmCiphertext",
    "MessagePayload",
    "OlmCiphertext",
    "OlmMachine",
    "OutboundGroup",
    "RecoveryCode",
    "ReplayedMessage",
    "RoomKey",
    "SasVerification",
    "SeenIndexes",
    "SessionExpired",
    "ToDevicePayload",
    "UnknownSession",
    "UntrustedDevice",
    "VerificationQr",
    "VerifiedDevice",
    "WrongRecoveryCode",
    "accept_room_key",
    "adecrypt_attachment",
    "check_binding",
    "check_to_device_binding",
    "code_key",
    "decode_payload",
    "decrypt_attachment",
    "decrypt_to_path",
    "encode_payload",
    "encrypt_file",
    "format_safety_number",
    "new_recovery_code",
    "room_key_of",
    "safety_number",
    "share_room_key",
    "unwrap_identity_key",
    "verify_device",
    "verify_identity_key",
    "wrap_identity_key",
]
