// Test devices for the crypto tests: an identity key, a device account,
// its certificate, an Olm machine and an inbound group store.
import type { DeviceKeys } from "../../src/gen/proto";
import { b64encode, fromHex } from "../../src/crypto/base64";
import { CryptoError, type CryptoErrorKind } from "../../src/crypto/errors";
import { IdentityKeyPair, verifyDevice, type VerifiedDevice } from "../../src/crypto/keys";
import { InboundGroupStore } from "../../src/crypto/megolm";
import { DeviceAccount, OlmMachine } from "../../src/crypto/olm";

export const PICKLE_KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
export const CONVERSATION = "C".repeat(22);
export const OTHER_CONVERSATION = "D".repeat(22);
export const NOW = 1_700_000_000_000;

let counter = 0;
export function deviceId(): string {
  return String(counter++).padStart(22, "0");
}

export function messageId(n: number): string {
  return `m${String(n).padStart(21, "0")}`;
}

export interface Device {
  user: string;
  device: string;
  identity: IdentityKeyPair;
  account: DeviceAccount;
  olm: OlmMachine;
  certificate: DeviceKeys;
  inbound: InboundGroupStore;
  verified: VerifiedDevice;
}

export async function makeDevice(user = "alice@example.org", identity?: IdentityKeyPair): Promise<Device> {
  identity ??= await IdentityKeyPair.generate();
  const account = DeviceAccount.create();
  const device = deviceId();
  const certificate = await identity.certify(account.deviceKeys(user, device));
  return {
    user,
    device,
    identity,
    account,
    olm: new OlmMachine(account, user, device),
    certificate,
    inbound: new InboundGroupStore(),
    verified: await verifyDevice(identity.publicKey, certificate),
  };
}

export function freeDevice(d: Device): void {
  d.olm.free();
  d.inbound.free();
  d.account.free();
}

/** Give `to` an Olm session from `from` (claiming one of `to`'s one-time keys). */
export async function connect(from: Device, to: Device): Promise<void> {
  const [otk] = await to.account.oneTimeKeys(to.user, to.device, 1);
  to.account.markPublished();
  await from.olm.createOutboundSession(to.verified, otk!);
}

/** The CryptoError kind `f` fails with (throws if it does not fail so). */
export async function kindOf(f: () => unknown): Promise<CryptoErrorKind> {
  try {
    await f();
  } catch (err) {
    if (err instanceof CryptoError) return err.kind;
    throw err;
  }
  throw new Error("did not fail");
}

/** Every standard low-order Curve25519 encoding (libsodium's list), each
 * also with the ignored top bit set. */
export const LOW_ORDER_CURVE25519: string[] = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
].flatMap((hex) => {
  const raw = fromHex(hex);
  const high = raw.slice();
  high[31] = high[31]! | 0x80;
  return [b64encode(raw), b64encode(high)];
});

export const SMALL_ORDER_ED25519: string[] = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0100000000000000000000000000000000000000000000000000000000000080",
].map((hex) => b64encode(fromHex(hex)));

