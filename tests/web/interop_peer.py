"""The Python side of the web crypto layer's interop tests.

``web/test/crypto/interop.test.ts`` starts this script with the project's
venv and talks to it in JSON lines over stdin/stdout: one request
``{"id": n, "op": "...", ...}`` per line, one answer ``{"id": n, "ok":
result}`` or ``{"id": n, "error": {"type": "BadKey", "message": "..."}}``.
Bytes travel as standard base64. Everything here goes through the real
``taube.crypto`` package (vodozemac), so both directions run live: what the
browser makes, Python opens, and the other way round.

Named objects (identity keys, devices, SAS sides) live in this process for
as long as it runs; nothing is written to disk. Never run against real keys:
answers carry secrets (seeds, codes) in the clear for the tests' sake.
"""

from __future__ import annotations

import base64
import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

import msgspec

from taube.client import linking, statekey
from taube.crypto import (
    DeviceAccount,
    EstablishedSas,
    ExportedRoomKey,
    IdentityBackup,
    IdentityKeyPair,
    InboundGroupStore,
    KdfParams,
    MessagePayload,
    OlmCiphertext,
    OlmMachine,
    OutboundGroup,
    SasVerification,
    ToDevicePayload,
    VerificationQr,
    VerifiedDevice,
    accept_room_key,
    decode_payload,
    encode_payload,
    format_safety_number,
    safety_number,
    share_room_key,
    unwrap_identity_key,
    verify_device,
    verify_identity_key,
    wrap_identity_key,
)
from taube.crypto.attachments import AttachmentEncryptor, AttachmentKey, decrypt_attachment
from taube.crypto.backup import recovery_code_bytes
from taube.crypto.verification import fingerprint_half
from taube.proto.errors import ProtocolError
from taube.proto.ids import ConversationId, DeviceId, MessageId, UserId
from taube.proto.keys import DeviceKeys, IdentityKey, OneTimeKey
from taube.proto.signing import canonical_json, check_curve25519, ed25519_public_key, verify


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Device:
    user: UserId
    device: DeviceId
    identity: IdentityKeyPair
    olm: OlmMachine
    inbound: InboundGroupStore = field(default_factory=InboundGroupStore)
    outbound: dict[str, OutboundGroup] = field(default_factory=dict)


identities: dict[str, IdentityKeyPair] = {}
devices: dict[str, Device] = {}
sas_sides: dict[str, SasVerification] = {}
established: dict[str, EstablishedSas] = {}
qr_codes: dict[str, VerificationQr] = {}


def peer_of(spec: dict[str, Any]) -> VerifiedDevice:
    """A device the tests name by ``{identity_key, certificate}``."""
    return verify_device(spec["identity_key"], msgspec.convert(spec["certificate"], DeviceKeys))


def builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)


# ==================================================================== operations


def op_canonical(obj: dict[str, Any], without: str = "signature") -> str:
    return b64(canonical_json(obj, without=without))


def op_identity(name: str, seed: str | None = None) -> dict[str, str]:
    identity = (
        IdentityKeyPair.from_private_bytes(unb64(seed)) if seed else IdentityKeyPair.generate()
    )
    identities[name] = identity
    return {"public_key": identity.public_key, "seed": b64(identity.private_bytes())}


def op_sign(name: str, domain: str, obj: dict[str, Any]) -> str:
    return identities[name].sign(domain.encode(), obj)  # type: ignore[arg-type]


def op_verify(domain: str, obj: dict[str, Any], key: str, signature: str) -> bool:
    verify(domain.encode(), obj, key, signature)  # type: ignore[arg-type]
    return True


def op_identity_key(name: str, user: str) -> Any:
    return builtins(identities[name].identity_key(UserId(user)))


def op_verify_identity_key(key: dict[str, Any]) -> str:
    return verify_identity_key(msgspec.convert(key, IdentityKey))


def op_certify(name: str, device_keys: dict[str, Any]) -> Any:
    # DeviceKeys(...) rather than convert: an unsigned certificate fails validation
    return builtins(identities[name].certify(DeviceKeys(**device_keys)))


def op_verify_device(identity_key: str, certificate: dict[str, Any]) -> Any:
    return builtins(verify_device(identity_key, msgspec.convert(certificate, DeviceKeys)))


def op_check_curve25519(key: str) -> bool:
    check_curve25519(key)
    return True


def op_check_ed25519(key: str) -> bool:
    ed25519_public_key(key)
    return True


def op_device(name: str, user: str, device: str, identity: str | None = None) -> Any:
    """A full device: identity key (new, or a named one), account, certificate."""
    if identity is None:
        identities[name] = IdentityKeyPair.generate()
        identity = name
    keys = identities[identity]
    account = DeviceAccount.create()
    dev = Device(
        UserId(user), DeviceId(device), keys, OlmMachine(account, UserId(user), DeviceId(device))
    )
    devices[name] = dev
    certificate = keys.certify(account.device_keys(dev.user, dev.device))
    return {"identity_key": keys.public_key, "certificate": builtins(certificate)}


def op_one_time_keys(name: str, n: int) -> Any:
    dev = devices[name]
    keys = dev.olm.account.one_time_keys(dev.user, dev.device, n)
    dev.olm.account.mark_keys_as_published()
    return builtins(keys)


def op_fallback_key(name: str) -> Any:
    dev = devices[name]
    key = dev.olm.account.fallback_key(dev.user, dev.device)
    dev.olm.account.mark_keys_as_published()
    return builtins(key)


def op_olm_outbound(name: str, peer: dict[str, Any], otk: dict[str, Any]) -> str:
    return devices[name].olm.create_outbound_session(
        peer_of(peer), msgspec.convert(otk, OneTimeKey)
    )


def op_olm_encrypt_to_device(
    name: str, peer: dict[str, Any], type: str, content: dict[str, Any]
) -> str:
    return b64(devices[name].olm.encrypt_to_device(peer_of(peer), type, content))


def op_olm_decrypt_to_device(name: str, sender: dict[str, Any], body: str) -> Any:
    return builtins(devices[name].olm.decrypt_to_device(peer_of(sender), unb64(body)))


def op_olm_encrypt(name: str, peer: dict[str, Any], plaintext: str) -> Any:
    return builtins(devices[name].olm.encrypt(peer_of(peer), plaintext.encode()))


def op_olm_decrypt(name: str, sender: dict[str, Any], message: dict[str, Any]) -> str:
    plaintext = devices[name].olm.decrypt(peer_of(sender), msgspec.convert(message, OlmCiphertext))
    return plaintext.decode()


def op_olm_encrypt_payload(name: str, peer: dict[str, Any], payload: dict[str, Any]) -> str:
    """Encrypt a hand-made ToDevicePayload (to test the binding checks)."""
    data = encode_payload(msgspec.convert(payload, ToDevicePayload))
    return b64(devices[name].olm.encrypt(peer_of(peer), data).to_body())


def op_megolm_create(name: str, conversation: str, now: int) -> str:
    group = OutboundGroup.create(ConversationId(conversation), now)
    devices[name].outbound[conversation] = group
    return group.session_id


def op_megolm_share(name: str, conversation: str, peers: list[dict[str, Any]]) -> Any:
    dev = devices[name]
    group = dev.outbound[conversation]
    targets = [peer_of(p) for p in peers]
    messages, without = share_room_key(dev.olm, group, targets)
    group.mark_shared([t for t in targets if t not in without])
    return {
        "messages": [json.loads(msgspec.json.encode(m)) for m in messages],
        "without_session": [w.device for w in without],
    }


def op_megolm_accept(name: str, sender: dict[str, Any], body: str) -> bool:
    dev = devices[name]
    device = peer_of(sender)
    payload = dev.olm.decrypt_to_device(device, unb64(body))
    return accept_room_key(dev.inbound, device, payload)


def op_megolm_encrypt(name: str, conversation: str, payload: dict[str, Any], now: int) -> str:
    group = devices[name].outbound[conversation]
    return b64(group.encrypt_payload(msgspec.convert(payload, MessagePayload), now_ms=now))


def op_megolm_encrypt_raw(name: str, conversation: str, plaintext: str, now: int) -> str:
    group = devices[name].outbound[conversation]
    return b64(group.encrypt(plaintext.encode(), now_ms=now).to_body())


def op_megolm_decrypt(
    name: str, sender: dict[str, Any], conversation: str, message_id: str, body: str
) -> Any:
    result = devices[name].inbound.decrypt_message(
        peer_of(sender), ConversationId(conversation), MessageId(message_id), unb64(body)
    )
    return {
        "payload": builtins(result.payload),
        "session_id": result.session_id,
        "index": result.message_index,
    }


def op_megolm_export(
    name: str, conversation: str, creator_key: str, session_id: str, index: int | None = None
) -> Any:
    ref = (ConversationId(conversation), creator_key, session_id)
    return builtins(devices[name].inbound.export(ref, index))


def op_megolm_import(name: str, exported: dict[str, Any]) -> bool:
    return devices[name].inbound.import_session(msgspec.convert(exported, ExportedRoomKey))


def op_megolm_gaps(name: str, conversation: str, creator_key: str, session_id: str) -> Any:
    return devices[name].inbound.gaps((ConversationId(conversation), creator_key, session_id))


def op_payload(kind: str, data: str) -> Any:
    """Decode a payload as Python does, and encode it back."""
    struct = MessagePayload if kind == "message" else ToDevicePayload
    decoded = decode_payload(unb64(data), struct)
    return {"decoded": builtins(decoded), "encoded": b64(encode_payload(decoded))}


def op_attachment_encrypt(data: str, key: str | None = None) -> Any:
    encryptor = AttachmentEncryptor(unb64(key) if key else None)
    ciphertext = b"".join(encryptor.encrypt(BytesIO(unb64(data))))
    return {"ciphertext": b64(ciphertext), "key": builtins(encryptor.result())}


def op_attachment_decrypt(ciphertext: str, key: dict[str, Any]) -> str:
    plain = decrypt_attachment(BytesIO(unb64(ciphertext)), msgspec.convert(key, AttachmentKey))
    return b64(b"".join(plain))


def op_state_seal(key_id: str, key: str, conversation: str, field: str, text: str) -> str:
    return b64(statekey.seal(key_id, unb64(key), conversation, field, unb64(text)))


def op_state_unseal(key: str, conversation: str, field: str, sealed: str) -> str | None:
    text = statekey.unseal(unb64(key), conversation, field, unb64(sealed))
    return None if text is None else b64(text)


def op_backup_wrap(name: str, user: str, code: str, params: dict[str, int]) -> str:
    blob = wrap_identity_key(identities[name], code, UserId(user), params=KdfParams(**params))
    return b64(blob.to_bytes())


def op_backup_unwrap(data: str, user: str, code: str) -> str:
    blob = IdentityBackup.from_bytes(unb64(data))
    return unwrap_identity_key(blob, code, expected_user=UserId(user)).public_key


def op_recovery_code_bytes(code: str) -> str:
    return recovery_code_bytes(code).hex()


def op_safety_number(own_user: str, own_key: str, their_user: str, their_key: str) -> Any:
    number = safety_number(UserId(own_user), own_key, UserId(their_user), their_key)
    return {"number": number, "formatted": format_safety_number(number)}


def op_fingerprint_half(key: str, identifier: str, iterations: int) -> str:
    return fingerprint_half(unb64(key), unb64(identifier), iterations)


def op_sas_new(name: str, user: str, device: str, txn: str) -> Any:
    side = SasVerification(UserId(user), DeviceId(device), txn)
    sas_sides[name] = side
    return {"public_key": side.public_key, "commitment": side.commitment()}


def op_sas_check_commitment(name: str, key: str, commitment: str) -> bool:
    sas_sides[name].check_commitment(key, commitment)
    return True


def op_sas_establish(name: str, user: str, device: str, key: str) -> Any:
    est = sas_sides[name].establish(UserId(user), DeviceId(device), key)
    established[name] = est
    return {"emoji_indices": est.emoji_indices(), "decimals": list(est.decimals())}


def op_sas_mac(name: str, key_id: str, key: str) -> str:
    return established[name].mac(key_id, key)


def op_sas_verify_mac(name: str, key_id: str, key: str, tag: str) -> bool:
    established[name].verify_mac(key_id, key, tag)
    return True


def op_link_make(identity_key: str) -> Any:
    code, secret = linking.make_code(identity_key)
    return {"code": code, "secret": secret.hex()}


def op_link_parse(code: str) -> Any:
    secret, fingerprint = linking.parse_code(code)
    return {"secret": secret.hex(), "fingerprint": fingerprint.hex()}


def op_link_fingerprint(identity_key: str) -> str:
    return linking.fingerprint(identity_key).hex()


def op_link_request(name: str, peer: dict[str, Any], secret: str, device_name: str) -> str:
    return b64(
        linking.request_body(devices[name].olm, peer_of(peer), bytes.fromhex(secret), device_name)
    )


def op_link_decode(body: str) -> Any:
    envelope = linking.decode_envelope(unb64(body))
    return None if envelope is None else builtins(envelope)


def op_link_receive(name: str, user: str, device: str, identity_key: str, body: str) -> Any:
    """The existing device's side: decrypt a link request with the keys beside it."""
    envelope = linking.decode_envelope(unb64(body))
    if envelope is None:
        raise ValueError("not a link envelope")
    peer = linking.provisional_device(UserId(user), envelope, DeviceId(device), identity_key)
    payload = devices[name].olm.decrypt_to_device(peer, envelope.olm.to_body())
    return builtins(payload)


def op_qr_create(name: str, user: str, identity_key: str) -> str:
    code = VerificationQr.create(UserId(user), identity_key)
    qr_codes[name] = code
    return b64(code.to_bytes())


def op_qr_parse(data: str) -> Any:
    code = VerificationQr.from_bytes(unb64(data))
    return {"user": code.user, "identity_key": code.identity_key, "secret": b64(code.secret)}


def op_qr_check_secret(name: str, secret: str) -> bool:
    return qr_codes[name].check_secret(unb64(secret))


OPS: dict[str, Callable[..., Any]] = {
    name[3:]: fn for name, fn in dict(globals()).items() if name.startswith("op_") and callable(fn)
}


def answer(request: dict[str, Any]) -> dict[str, Any]:
    rid = request.pop("id")
    op = request.pop("op")
    try:
        return {"id": rid, "ok": OPS[op](**request)}
    except (ProtocolError, msgspec.ValidationError, ValueError, linking.LinkError) as exc:
        return {"id": rid, "error": {"type": type(exc).__name__, "message": str(exc), **_code(exc)}}
    except Exception as exc:  # the crypto error tree, and anything unexpected
        message = str(exc) if type(exc).__module__.startswith("taube") else traceback.format_exc()
        return {"id": rid, "error": {"type": type(exc).__name__, "message": message}}


def _code(exc: Exception) -> dict[str, str]:
    return {"code": exc.code.value} if isinstance(exc, ProtocolError) else {}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        sys.stdout.write(json.dumps(answer(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
