// Call signalling in the browser (the SDK's taube.client.calls): which
// invites ring and which are refused. (Calls end to end, browser ↔ browser
// and browser ↔ SDK: tests/web/test_calls_browser.py.)
import { describe, expect, it } from "vitest";
import type { VerifiedDevice } from "../../src/crypto/keys";
import { Calls, callEventOf } from "../../src/client/calls";
import type { Api } from "../../src/client/api";
import type { TaubeCarrier } from "../../src/client/carrier";
import type { Account, ChainSource, Sender } from "../../src/client/types";
import { CALL_TYPE } from "../../src/gen/proto";

const ME = "me@example.org";
const PEER = { user: "bob@example.org", device: "BOBDEVICE" } as VerifiedDevice;
const STRANGER = { user: "mallory@example.org", device: "MALDEVICE" } as VerifiedDevice;
const CHAT = "c".repeat(22);

function calls(): { calls: Calls; sent: [string, string, Record<string, unknown>][] } {
  const sent: [string, string, Record<string, unknown>][] = [];
  const account = { keys: null, need: () => ({ user: ME, device: "MYDEVICE" }) } as unknown as Account;
  const carrier = {
    sendToDevice: async (d: VerifiedDevice, type: string, content: Record<string, unknown>) => {
      sent.push([d.user, type, content]);
    },
  } as unknown as TaubeCarrier;
  const chains: ChainSource = {
    chain: async () => ({ events: [], state: { members: { [ME]: "owner", [PEER.user]: "member" } } }) as never,
  };
  const sender: Sender = { send: async () => "id" };
  return { calls: new Calls(account, {} as Api, carrier, chains, sender), sent };
}

function invite(changes: Record<string, unknown> = {}): Record<string, unknown> {
  return { call: "A".repeat(22), conversation: CHAT, ts: Date.now(), sdp: "v=0\r\n", video: true, ...changes };
}

describe("invites", () => {
  it("a fresh invite from a member rings", async () => {
    const { calls: c } = calls();
    await c.onMessage(PEER, CALL_TYPE.invite, invite());
    expect(c.current.value?.state).toBe("ringing");
    expect(c.current.value?.peer).toBe(PEER.user);
    expect(c.current.value?.video).toBe(true);
    await c.reject();
  });

  it.each([
    ["stale", { ts: Date.now() - 2 * CALL_TYPE.ringMs }],
    ["from the future", { ts: Date.now() + 3_600_000 }],
    ["a bad call id", { call: "../x" }],
    ["no SDP", { sdp: "hello" }],
    ["too long an SDP", { sdp: "v=0\r\n" + "a".repeat(CALL_TYPE.maxSdp) }],
    ["a silly ring time", { lifetime_ms: 10 }],
  ])("an invite that is %s never rings", async (_what, changes) => {
    const { calls: c } = calls();
    await c.onMessage(PEER, CALL_TYPE.invite, invite(changes));
    expect(c.current.value).toBeNull();
  });

  it("refuses non-members and replays", async () => {
    const { calls: c } = calls();
    await c.onMessage(STRANGER, CALL_TYPE.invite, invite());
    expect(c.current.value).toBeNull();
    const once = invite();
    await c.onMessage(PEER, CALL_TYPE.invite, once);
    await c.reject();
    c.dismiss();
    await c.onMessage(PEER, CALL_TYPE.invite, once);
    expect(c.current.value).toBeNull();
  });

  it("answers busy while in a call, and the caller's hang-up stops the ringing", async () => {
    const { calls: c, sent } = calls();
    await c.onMessage(PEER, CALL_TYPE.invite, invite());
    await c.onMessage(PEER, CALL_TYPE.invite, invite({ call: "B".repeat(22) }));
    await new Promise((r) => setTimeout(r, 0));
    expect(sent).toContainEqual([PEER.user, CALL_TYPE.reject, { call: "B".repeat(22), reason: "busy" }]);
    await c.onMessage(PEER, CALL_TYPE.hangup, { call: "A".repeat(22), reason: "hangup" });
    await new Promise((r) => setTimeout(r, 0));
    expect(c.current.value?.state).toBe("ended");
    expect(c.current.value?.reason).toBe("missed");
  });
});

describe("the call in the chat", () => {
  it("reads what a call message says, defensively", () => {
    expect(callEventOf({ outcome: "answered", video: true, duration_ms: 185_000 })).toEqual({
      outcome: "answered",
      video: true,
      durationMs: 185_000,
    });
    expect(callEventOf({ outcome: 7, duration_ms: -5 })).toEqual({ outcome: "7", video: false, durationMs: 0 });
  });
});
