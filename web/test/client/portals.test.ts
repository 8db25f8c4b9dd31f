// Portals in the engine, as the SDK has them (taube.client.portals,
// events.Remote/Relayed, Messages.history): portal and relay are
// annotations, a connector's message shows its remote author, a relay
// annotation says how the user's message went on, and the newest portal
// message of a conversation says what it reaches.
import { describe, expect, it } from "vitest";
import type { Db, MessageRow } from "../../src/client/db";
import type { Keys } from "../../src/client/keys";
import { ANNOTATIONS, Messages } from "../../src/client/messages";
import { EMAIL, PORTAL, Portals, RELAY, emailPortal, isOwnDomain, portalOf, relayedOf, remoteOf } from "../../src/client/portals";
import type { Account } from "../../src/client/types";

const ME = "mara@taube.example";
const BEN = "ben@taube.example";
const WEB = "web-device";
const CONNECTOR = "connector-device";
const JONAS = "jonas@mail.example";
const C = "conversation-1";

function account(): Account {
  const keys = { user: ME, device: WEB } as unknown as Keys;
  return { keys, need: () => keys };
}

let order = 0;
function row(type: string, content: Record<string, unknown>, extra: Partial<MessageRow> = {}): MessageRow {
  order += 1;
  return {
    conversation: C,
    id: `m${order}`,
    seq: order,
    sender: ME,
    senderDevice: CONNECTOR,
    ts: 1_700_000_000_000 + order * 1000,
    type,
    content,
    status: "received",
    expiresMs: null,
    session: null,
    order,
    ...extra,
  };
}

function messages(rows: MessageRow[]): Messages {
  const log = new Messages(account(), {} as Db, () => undefined);
  for (const r of rows) log.replaceRow(r);
  return log;
}

const remote = { network: EMAIL, sender: JONAS, name: "Jonas Weber", encrypted: true };

describe("annotations", () => {
  it("portal and relay change other messages instead of showing one", () => {
    expect(ANNOTATIONS.has(PORTAL)).toBe(true);
    expect(ANNOTATIONS.has(RELAY)).toBe(true);
    const log = messages([
      row(PORTAL, { network: EMAIL, chat: JONAS, peers: [JONAS], title: JONAS, by: CONNECTOR }),
      row("text", { body: "hello" }, { senderDevice: WEB, status: "sent" }),
    ]);
    const shown = log.history(C);
    expect(shown.map((m) => m.text)).toEqual(["hello"]);
  });
});

describe("remote authors", () => {
  it("a message the user's connector brought in is the remote person's, not the user's", () => {
    const log = messages([row("text", { body: "Hi Mara", remote })]);
    const [m] = log.history(C);
    expect(m?.mine).toBe(false);
    expect(m?.remote).toEqual(remote);
    expect(m?.sender).toBe(ME);
    expect(log.unread(C)).toBe(1);
  });

  it("in a group with others, is honoured from the device serving the portal", () => {
    const log = messages([
      row(PORTAL, { network: EMAIL, chat: "group:g1", peers: [JONAS], title: "Club", by: "ben-connector" }, { sender: BEN, senderDevice: "ben-connector" }),
      row("text", { body: "from Jonas, via Ben's connector", remote }, { sender: BEN, senderDevice: "ben-connector" }),
      row("text", { body: "Ben's phone pretends", remote }, { sender: BEN, senderDevice: "ben-phone" }),
    ]);
    expect(log.history(C).map((m) => m.remote?.sender ?? null)).toEqual([JONAS, null]);
  });

  it("keeps reply_to, and ignores remote from anyone but the user's own devices", () => {
    const first = row("text", { body: "mine" }, { senderDevice: WEB, status: "sent" });
    const log = messages([
      first,
      row("text", { body: "an answer", remote, reply_to: first.id }),
      row("text", { body: "I am not Jonas", remote }, { sender: BEN, senderDevice: "ben-device" }),
    ]);
    const [, answer, spoof] = log.history(C);
    expect(answer?.replyTo).toBe(first.id);
    expect(spoof?.remote).toBeNull();
    expect(spoof?.sender).toBe(BEN);
  });

  it("a read receipt the connector brought in marks the user's message read by the remote reader", () => {
    const mine = row("text", { body: "are you there?" }, { senderDevice: WEB, status: "sent" });
    const log = messages([mine, row("receipt", { read: [mine.id], remote })]);
    const [m] = log.history(C);
    expect(m?.readBy).toEqual([JONAS]);
    expect(m?.status).toBe("read");
  });

  it("rejects a remote without a sender, and bounds the name", () => {
    expect(remoteOf({ network: EMAIL, name: "x" })).toBeNull();
    expect(remoteOf("jonas")).toBeNull();
    expect(remoteOf({ sender: JONAS, name: "n".repeat(500), encrypted: "yes" })).toEqual({
      network: "",
      sender: JONAS,
      name: "n".repeat(100),
      encrypted: false,
    });
  });
});

describe("relays", () => {
  it("the newest relay annotation of the user's own devices says how the message went on", () => {
    const mine = row("text", { body: "see you" }, { senderDevice: WEB, status: "sent" });
    const log = messages([
      mine,
      row(RELAY, { target: mine.id, network: EMAIL, encrypted: true, error: "timeout" }),
      row(RELAY, { target: mine.id, network: EMAIL, encrypted: false }),
    ]);
    expect(log.history(C)[0]?.relayed).toEqual({ network: EMAIL, encrypted: false, error: "", plainTo: [] });
  });

  it("is ignored from another user and on messages that are not the user's", () => {
    const mine = row("text", { body: "mine" }, { senderDevice: WEB, status: "sent" });
    const theirs = row("text", { body: "from Jonas", remote });
    const log = messages([
      mine,
      theirs,
      row(RELAY, { target: mine.id, network: EMAIL, encrypted: true }, { sender: BEN, senderDevice: "ben-device" }),
      row(RELAY, { target: theirs.id, network: EMAIL, encrypted: true }),
    ]);
    expect(log.history(C).map((m) => m.relayed)).toEqual([null, null]);
  });

  it("carries an error", () => {
    expect(relayedOf({ target: "x", network: EMAIL, encrypted: false, error: "550 no such user" })).toEqual({
      network: EMAIL,
      encrypted: false,
      error: "550 no such user",
      plainTo: [],
    });
    expect(relayedOf({ network: EMAIL, encrypted: false, plain_to: [JONAS] }).plainTo).toEqual([JONAS]);
  });
});

describe("portals", () => {
  const claim = { network: EMAIL, chat: JONAS, peers: [JONAS], title: "Jonas Weber", by: CONNECTOR };

  it("the newest portal message wins; by counts only from the device it names", () => {
    const log = messages([
      row(PORTAL, { network: EMAIL, chat: JONAS, peers: [JONAS], title: JONAS }, { senderDevice: WEB }),
      row(PORTAL, claim),
    ]);
    const portals = new Portals(log, { createGroup: () => Promise.reject(new Error("unused")) }, { send: () => Promise.reject(new Error("unused")) });
    expect(portals.get(C)).toEqual({ ...claim });
    expect(portals.find(EMAIL, "JONAS@mail.example")).toBe(C);
    expect(portals.find(EMAIL, "other@mail.example")).toBeNull();

    log.replaceRow(row(PORTAL, claim, { senderDevice: WEB })); // a device claiming for another
    expect(portals.get(C)?.by).toBeNull();
  });

  it("a portal message without a chat is no portal", () => {
    expect(portalOf({ network: EMAIL, chat: "" }, WEB)).toBeNull();
    expect(portalOf({ chat: JONAS }, WEB)).toBeNull();
    expect(portalOf({ network: EMAIL, chat: JONAS, peers: "x" }, WEB)).toEqual({ network: EMAIL, chat: JONAS, peers: [], title: "", by: null });
  });

  it("opening one makes a group of the user's own and says what it reaches, as the SDK's start_chat", async () => {
    const log = messages([]);
    const made: [string, string[]][] = [];
    const sent: [string, string, Record<string, unknown>][] = [];
    const portals = new Portals(
      log,
      { createGroup: async (title, members) => (made.push([title, members]), "new-conversation") },
      { send: async (conversation, type, content) => (sent.push([conversation, type, content]), "id") },
    );
    const address = "someone@elsewhere.example";
    expect(await portals.open(emailPortal(address))).toBe("new-conversation");
    expect(made).toEqual([[address, []]]);
    expect(sent).toEqual([["new-conversation", PORTAL, { network: EMAIL, chat: address, peers: [address], title: address }]]);
  });

  it("opening a chat that has a portal returns it", async () => {
    const log = messages([row(PORTAL, claim)]);
    const portals = new Portals(log, { createGroup: () => Promise.reject(new Error("made twice")) }, { send: () => Promise.reject(new Error("sent twice")) });
    expect(await portals.open(emailPortal(JONAS))).toBe(C);
  });

  it("an address on another domain goes by e-mail", () => {
    expect(isOwnDomain("ben@taube.example", ME)).toBe(true);
    expect(isOwnDomain("someone@elsewhere.example", ME)).toBe(false);
  });
});
