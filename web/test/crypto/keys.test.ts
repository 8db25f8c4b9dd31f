import { describe, expect, it } from "vitest";
import { DOMAIN } from "../../src/gen/proto";
import { b64decode, b64encode, fromHex } from "../../src/crypto/base64";
import {
  checkCurve25519,
  checkEd25519Key,
  IdentityKeyPair,
  verifyDevice,
  verifyIdentityKey,
  verifySignature,
} from "../../src/crypto/keys";
import { kindOf, LOW_ORDER_CURVE25519, SMALL_ORDER_ED25519 } from "./helpers";

const RFC8032_SEED = fromHex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
const RFC8032_PUBLIC = fromHex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");

describe("identity key", () => {
  it("derives RFC 8032's public key from its seed", async () => {
    const identity = await IdentityKeyPair.fromSeed(RFC8032_SEED);
    expect(identity.publicKey).toBe(b64encode(RFC8032_PUBLIC));
    expect(identity.seed()).toEqual(RFC8032_SEED);
    expect(String(identity)).not.toContain(b64encode(RFC8032_SEED));
    expect(JSON.stringify(identity)).not.toContain(b64encode(RFC8032_SEED));
  });

  it("signs and verifies under a domain", async () => {
    const identity = await IdentityKeyPair.generate();
    const obj = { b: 1, a: "x", signature: "" };
    const signature = await identity.sign(DOMAIN.state, obj);
    expect(b64decode(signature)).toHaveLength(64);
    await verifySignature(DOMAIN.state, { ...obj, signature }, identity.publicKey, signature);
    expect(await kindOf(() => verifySignature(DOMAIN.device, obj, identity.publicKey, signature))).toBe("bad_signature");
    expect(await kindOf(() => verifySignature(DOMAIN.state, { ...obj, b: 2 }, identity.publicKey, signature))).toBe("bad_signature");
    expect(await kindOf(() => verifySignature(DOMAIN.state, obj, identity.publicKey, "!!"))).toBe("bad_signature");
    expect(await kindOf(() => verifySignature(DOMAIN.state, obj, identity.publicKey, signature.slice(0, 80)))).toBe("bad_signature");
    expect(await kindOf(() => verifySignature(DOMAIN.state, obj, "AAAA", signature))).toBe("bad_key");
  });

  it("refuses a malleated signature (S + L)", async () => {
    const identity = await IdentityKeyPair.generate();
    const obj = { a: 1 };
    const sig = b64decode(await identity.sign(DOMAIN.state, obj));
    // add the group order L to S (little-endian, bytes 32..63)
    const L = fromHex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    let carry = 0;
    for (let i = 0; i < 32; i++) {
      const sum = sig[32 + i]! + L[i]! + carry;
      sig[32 + i] = sum & 0xff;
      carry = sum >> 8;
    }
    expect(await kindOf(() => verifySignature(DOMAIN.state, obj, identity.publicKey, b64encode(sig)))).toBe("bad_signature");
  });

  it("refuses small-order Ed25519 keys", async () => {
    for (const key of SMALL_ORDER_ED25519) {
      expect(() => checkEd25519Key(key), key).toThrow();
      expect(await kindOf(() => verifySignature(DOMAIN.state, {}, key, "A".repeat(86)))).toBe("bad_key");
    }
    checkEd25519Key(b64encode(RFC8032_PUBLIC));
  });

  it("refuses every low-order Curve25519 encoding", async () => {
    expect(LOW_ORDER_CURVE25519).toHaveLength(14);
    for (const key of LOW_ORDER_CURVE25519) expect(await kindOf(() => checkCurve25519(key)), key).toBe("bad_key");
    expect(await kindOf(() => checkCurve25519("AAAA"))).toBe("bad_key");
    expect(await kindOf(() => checkCurve25519("not base64!"))).toBe("bad_key");
  });

  it("self-signs an identity key", async () => {
    const identity = await IdentityKeyPair.generate();
    const published = await identity.identityKey("alice@example.org");
    expect(await verifyIdentityKey(published)).toBe(identity.publicKey);
    const other = await IdentityKeyPair.generate();
    const forged = { ...published, identity_key: other.publicKey };
    expect(await kindOf(() => verifyIdentityKey(forged))).toBe("untrusted_device");
    expect(await kindOf(() => verifyIdentityKey({ ...published, user: "mallory@example.org" }))).toBe("untrusted_device");
  });
});

describe("device certificates", () => {
  const curve = async () => {
    const pair = (await crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"])) as CryptoKeyPair;
    return b64encode(new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)));
  };
  const device = async (identity: IdentityKeyPair) => ({
    user: "alice@example.org",
    device: "D".repeat(22),
    curve25519: await curve(),
    ed25519: (await IdentityKeyPair.generate()).publicKey,
    signature: "",
  });

  it("certifies and verifies", async () => {
    const identity = await IdentityKeyPair.generate();
    const keys = await device(identity);
    const certificate = await identity.certify(keys);
    const verified = await verifyDevice(identity.publicKey, certificate);
    const { user, device: id, curve25519, ed25519 } = keys;
    expect(verified).toEqual({ user, device: id, curve25519, ed25519, identityKey: identity.publicKey });
  });

  it("refuses a certificate by another key, or changed", async () => {
    const identity = await IdentityKeyPair.generate();
    const certificate = await identity.certify(await device(identity));
    const other = await IdentityKeyPair.generate();
    expect(await kindOf(() => verifyDevice(other.publicKey, certificate))).toBe("untrusted_device");
    expect(await kindOf(() => verifyDevice(identity.publicKey, { ...certificate, device: "E".repeat(22) }))).toBe("untrusted_device");
    expect(await kindOf(() => verifyDevice("AAAA", certificate))).toBe("bad_key");
  });

  it("refuses to certify, or to trust, low-order keys", async () => {
    const identity = await IdentityKeyPair.generate();
    for (const bad of LOW_ORDER_CURVE25519.slice(0, 4)) {
      const keys = { ...(await device(identity)), curve25519: bad };
      expect(await kindOf(() => identity.certify(keys))).toBe("bad_key");
      const signed = { ...keys, signature: await identity.sign(DOMAIN.device, keys) };
      expect(await kindOf(() => verifyDevice(identity.publicKey, signed))).toBe("bad_key");
    }
    const keys = { ...(await device(identity)), ed25519: SMALL_ORDER_ED25519[0]! };
    expect(await kindOf(() => identity.certify(keys))).toBe("bad_key");
  });
});
