"""``python -m bench.crypto``: throughput of the end-to-end crypto layer.

No server: everything runs in this process, single-threaded, through the
public API of ``taube.crypto`` (so the numbers include our checks, base64
and JSON, not just vodozemac):

1. Olm: one encrypt + one decrypt of a normal message per operation, on an
   established session (``OlmMachine.encrypt`` / ``decrypt``);
2. Megolm encrypt: ``OutboundGroup.encrypt``, a new session every 100
   messages as the rotation rule demands (its cost is included);
3. Megolm decrypt: ``InboundGroupStore.decrypt`` (replay bookkeeping
   included) and ``decrypt_message`` (plus payload decoding and the
   envelope binding check);
4. sharing one Megolm session key with N devices (100 and 1,000) over Olm:
   with Olm sessions already there (``share_room_key``); cold, including
   the one-time key checks and ``create_outbound_session`` per device; and
   the receivers' side (pre-key decrypt, new inbound session, payload
   checks, ``accept_room_key``), summed over all devices.

Run it as ``python -m bench crypto`` (or ``python -m bench.crypto``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from taube.crypto import (
    DeviceAccount,
    IdentityKeyPair,
    InboundGroupStore,
    MessagePayload,
    OlmMachine,
    OutboundGroup,
    VerifiedDevice,
    accept_room_key,
    encode_payload,
    share_room_key,
    verify_device,
)
from taube.proto.frames import ToDeviceMessage
from taube.proto.ids import ConversationId, DeviceId, MessageId, UserId
from taube.proto.keys import OneTimeKey

CONVERSATION = ConversationId("C" * 22)
RESULTS_DIR = Path(__file__).resolve().parent / "results"
NOW = 1_700_000_000_000


class Device:
    def __init__(self, user: str, n: int) -> None:
        self.identity = IdentityKeyPair.generate()
        self.user, self.device = UserId(user), DeviceId(f"{n:0>22}")
        self.olm = OlmMachine(DeviceAccount.create(), self.user, self.device)
        certificate = self.identity.certify(self.olm.account.device_keys(self.user, self.device))
        self.verified: VerifiedDevice = verify_device(self.identity.public_key, certificate)
        self.inbound = InboundGroupStore()

    def one_time_key(self) -> OneTimeKey:
        (key,) = self.olm.account.one_time_keys(self.user, self.device, 1)
        self.olm.account.mark_keys_as_published()
        return key


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_olm(count: int, size: int) -> float:
    alice, bob = Device("alice@example.org", 1), Device("bob@example.org", 2)
    alice.olm.create_outbound_session(bob.verified, bob.one_time_key())
    bob.olm.decrypt(alice.verified, alice.olm.encrypt(bob.verified, b"hello"))
    alice.olm.decrypt(bob.verified, bob.olm.encrypt(alice.verified, b"back"))
    plaintext = b"x" * size

    def run() -> None:
        for _ in range(count):
            bob.olm.decrypt(alice.verified, alice.olm.encrypt(bob.verified, plaintext))

    return rate(count, timed(run))


def message(sender: Device, n: int, size: int) -> MessagePayload:
    return MessagePayload(
        sender=sender.user,
        sender_device=sender.device,
        conversation=CONVERSATION,
        message_id=MessageId(f"m{n:0>21}"),
        type="text",
        content={"body": "x" * size},
    )


def bench_megolm(count: int, size: int) -> dict[str, float]:
    alice, bob = Device("alice@example.org", 1), Device("bob@example.org", 2)
    plaintext = encode_payload(message(alice, 0, size))

    def encrypt() -> None:
        group = OutboundGroup.create(CONVERSATION, NOW)
        for _ in range(count):
            if group.needs_rotation(NOW):
                group = OutboundGroup.create(CONVERSATION, NOW)
            group.encrypt(plaintext, now_ms=NOW)

    encrypt_rate = rate(count, timed(encrypt))

    # ciphertexts to decrypt: bob holds every session's key from index 0
    groups = [OutboundGroup.create(CONVERSATION, NOW) for _ in range(-(-2 * count // 100))]
    for group in groups:
        bob.inbound.add_room_key(group.room_key(), alice.verified)
    raw = [groups[i // 100].encrypt(plaintext, now_ms=NOW) for i in range(count)]
    bodies = [
        (
            MessageId(f"m{i:0>21}"),
            groups[i // 100].encrypt_payload(message(alice, i, size), now_ms=NOW),
        )
        for i in range(count, 2 * count)
    ]

    def decrypt_raw() -> None:
        for ciphertext in raw:
            bob.inbound.decrypt(alice.verified, CONVERSATION, ciphertext)

    def decrypt_full() -> None:
        for message_id, body in bodies:
            bob.inbound.decrypt_message(alice.verified, CONVERSATION, message_id, body)

    return {
        "megolm_encrypt_per_s": encrypt_rate,
        "megolm_decrypt_per_s": rate(len(raw), timed(decrypt_raw)),
        "megolm_decrypt_message_per_s": rate(len(bodies), timed(decrypt_full)),
    }


def bench_share(devices: int) -> dict[str, float]:
    alice = Device("alice@example.org", 0)
    members = [Device(f"user{i}@example.org", i + 1) for i in range(devices)]
    keys = [member.one_time_key() for member in members]
    group = OutboundGroup.create(CONVERSATION, NOW)

    def create_sessions() -> None:
        for member, key in zip(members, keys, strict=True):
            alice.olm.create_outbound_session(member.verified, key)

    sessions_s = timed(create_sessions)
    result: list[ToDeviceMessage] = []

    def share() -> None:
        messages, missing = share_room_key(alice.olm, group, [m.verified for m in members])
        assert not missing
        result.extend(messages)

    share_s = timed(share)

    def receive() -> None:
        for member, to_device in zip(members, result, strict=True):
            payload = member.olm.decrypt_to_device(alice.verified, to_device.body)
            accept_room_key(member.inbound, alice.verified, payload)

    receive_s = timed(receive)
    return {
        f"share_{devices}_warm_ms": share_s * 1000,
        f"share_{devices}_cold_ms": (sessions_s + share_s) * 1000,
        f"share_{devices}_receive_total_ms": receive_s * 1000,
    }


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError("device counts must be positive")
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=20_000, help="messages per measurement")
    parser.add_argument("--size", type=int, default=256, help="plaintext bytes per message")
    parser.add_argument(
        "--devices",
        type=_counts,
        default=_counts("100,1000"),
        help="devices to share a key with, comma-separated (100,1000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    parser.add_argument(
        "--json", type=Path, help="results file (default bench/results/crypto-<time>.json)"
    )


def run(args: argparse.Namespace) -> int:
    best: dict[str, float] = {}
    started = time.time()
    for number in range(1, args.repeat + 1):
        print(f"crypto: run {number}/{args.repeat}", file=sys.stderr)
        results = {"olm_round_trips_per_s": bench_olm(args.count, args.size)}
        results |= bench_megolm(args.count, args.size)
        for devices in args.devices:
            results |= bench_share(devices)
        for name, value in results.items():
            lower_is_better = name.endswith("_ms")
            if name not in best or (value < best[name] if lower_is_better else value > best[name]):
                best[name] = value
    for name, value in best.items():
        print(f"{name:32} {value:12,.1f}")
    path: Path = args.json or RESULTS_DIR / time.strftime(
        "crypto-%Y%m%d-%H%M%S.json", time.gmtime(started)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(best, indent=2) + "\n", "utf-8")
    print(f"results: {path}", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crypto", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
