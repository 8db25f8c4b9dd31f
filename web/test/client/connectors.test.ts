// The settings screen's side of the connector settings (taube.connectors.control):
// statuses count only from the user's own devices (certified by the identity
// key this browser holds), requests go only to devices that answered.
import { describe, expect, it } from "vitest";
import { CONNECTOR, Connectors, type DeviceSender } from "../../src/client/connectors";
import type { VerifiedDevice } from "../../src/crypto/keys";
import type { Keys } from "../../src/client/keys";
import type { Account } from "../../src/client/types";

const ME = "mara@taube.example";
const IDENTITY = "identity-key-of-mara";

function account(): Account {
  const keys = { user: ME, device: "browser", identity: { publicKey: IDENTITY } } as unknown as Keys;
  return { keys, need: () => keys };
}

function device(name: string, user = ME, identityKey = IDENTITY): VerifiedDevice {
  return { user, device: name, curve25519: "c", ed25519: "e", identityKey };
}

function connectors(): { part: Connectors; sent: [string, string, Record<string, unknown>][] } {
  const sent: [string, string, Record<string, unknown>][] = [];
  const carrier: DeviceSender = { sendToDevice: async (d, type, content) => void sent.push([d.device, type, content]) };
  return { part: new Connectors(account(), carrier), sent };
}

describe("connector statuses", () => {
  it("are believed from the user's own devices", async () => {
    const { part, sent } = connectors();
    expect(part.onMessage(device("home"), CONNECTOR.status, { network: "email", state: "connected", address: "mara@mail.example" })).toBe(true);
    expect(part.statuses.value.home).toMatchObject({ state: "connected", address: "mara@mail.example" });
    const request = await part.configure("home", { address: "mara@mail.example", password: "pw" });
    expect(sent).toEqual([["home", CONNECTOR.configure, { request, network: "email", account: { address: "mara@mail.example", password: "pw" } }]]);
    expect(part.answers.value[request]).toEqual({ outcome: "checking", reason: "" });
    part.onMessage(device("home"), CONNECTOR.status, { network: "email", state: "unconfigured", request, outcome: "auth_failed", reason: "refused" });
    expect(part.answers.value[request]).toEqual({ outcome: "auth_failed", reason: "refused" });
  });

  it("from anyone else change nothing, and nothing is sent to them", async () => {
    const { part, sent } = connectors();
    const status = { network: "email", state: "connected", address: "x@mail.example" };
    expect(part.onMessage(device("evil", "eve@taube.example"), CONNECTOR.status, status)).toBe(false);
    // a device the server lists for the user but certified by another key
    expect(part.onMessage(device("planted", ME, "the-servers-key"), CONNECTOR.status, status)).toBe(false);
    expect(part.onMessage(device("home"), CONNECTOR.status, { ...status, state: "owned" })).toBe(false);
    expect(part.onMessage(device("home"), CONNECTOR.configure, status)).toBe(false);
    expect(part.statuses.value).toEqual({});
    await expect(part.configure("evil", { address: "a@b.example", password: "pw" })).rejects.toThrow(/not answered/);
    expect(sent).toEqual([]);
  });
});
