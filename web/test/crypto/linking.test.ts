import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex, utf8 } from "../../src/crypto/base64";
import { IdentityKeyPair } from "../../src/crypto/keys";
import {
  checkLinkSecret,
  decodeLinkEnvelope,
  encodeLinkEnvelope,
  envelopeOlmBody,
  fingerprint,
  linkRequestBody,
  makeLinkCode,
  matchesFingerprint,
  parseLinkCode,
  provisionalDevice,
  TYPE_LINK_REQUEST,
} from "../../src/crypto/linking";
import { initOlm } from "../../src/crypto/olm";
import { connect, freeDevice, kindOf, makeDevice, type Device } from "./helpers";

beforeAll(initOlm);
const made: Device[] = [];
afterAll(() => made.forEach(freeDevice));

describe("link codes", () => {
  it("carry the secret and the identity fingerprint", async () => {
    const identity = await IdentityKeyPair.generate();
    const { code, secret } = await makeLinkCode(identity.publicKey);
    expect(code).toMatch(/^([0-9A-HJKMNP-TV-Z]{4}-){8}[0-9A-HJKMNP-TV-Z]{4}$/);
    expect(secret).toHaveLength(12);
    const parsed = parseLinkCode(code.toLowerCase().replace(/-/g, " ").replace(/0/g, "o"));
    expect(parsed.secret).toEqual(secret);
    expect(parsed.fingerprint).toEqual(await fingerprint(identity.publicKey));
    expect(await matchesFingerprint(identity.publicKey, parsed.fingerprint)).toBe(true);
    expect(await matchesFingerprint((await IdentityKeyPair.generate()).publicKey, parsed.fingerprint)).toBe(false);
    expect(checkLinkSecret(secret, toHex(secret))).toBe(true);
    expect(checkLinkSecret(secret, toHex(secret).toUpperCase())).toBe(true);
    expect(checkLinkSecret(secret, "00")).toBe(false);
    expect(checkLinkSecret(secret, "zz")).toBe(false);
  });

  it("refuses malformed codes", async () => {
    for (const bad of ["", "ABCD-EFGH", "U".repeat(36), "0".repeat(37)]) expect(await kindOf(() => parseLinkCode(bad))).toBe("bad_payload");
  });
});

describe("link requests", () => {
  it("open with the keys beside them", async () => {
    const existing = await makeDevice("alice@example.org");
    const fresh = await makeDevice("alice@example.org");
    made.push(existing, fresh);
    await connect(fresh, existing);
    const secret = new Uint8Array(12).fill(7);
    const body = linkRequestBody(fresh.olm, existing.verified, secret, "Phone");
    const envelope = decodeLinkEnvelope(body);
    expect(envelope).toMatchObject({ link: 1, curve25519: fresh.account.curve25519, ed25519: fresh.account.ed25519 });
    expect(Object.keys(JSON.parse(new TextDecoder().decode(body)))).toEqual(["link", "curve25519", "ed25519", "olm"]);
    const peer = provisionalDevice(existing.user, envelope!, fresh.device, existing.identity.publicKey);
    const payload = existing.olm.decryptToDevice(peer, envelopeOlmBody(envelope!));
    expect(payload.type).toBe(TYPE_LINK_REQUEST);
    expect(payload.content).toEqual({ secret: toHex(secret), name: "Phone" });
    // swapped keys beside the message: it does not decrypt
    const other = await makeDevice("alice@example.org");
    made.push(other);
    const swapped = { ...envelope!, curve25519: other.account.curve25519 };
    const peer2 = provisionalDevice(existing.user, swapped, fresh.device, existing.identity.publicKey);
    const body2 = linkRequestBody(fresh.olm, existing.verified, secret, "Phone");
    expect(await kindOf(() => existing.olm.decryptToDevice(peer2, envelopeOlmBody(decodeLinkEnvelope(body2)!)))).toBe("decryption_failed");
    expect(encodeLinkEnvelope(envelope!)).toEqual(body);
  });

  it("decode to null when malformed", () => {
    const ok = { link: 1, curve25519: "A".repeat(43), ed25519: "B".repeat(43), olm: { type: 0, body: "AAAA" } };
    expect(decodeLinkEnvelope(utf8(JSON.stringify(ok)))).toEqual(ok);
    for (const bad of [{}, { ...ok, extra: 1 }, { ...ok, curve25519: "x" }, { ...ok, olm: { type: 3, body: "A" } }, { ...ok, olm: { type: 0, body: "A", x: 1 } }]) {
      expect(decodeLinkEnvelope(utf8(JSON.stringify(bad)))).toBeNull();
    }
    expect(decodeLinkEnvelope(new Uint8Array([0xff]))).toBeNull();
  });
});
