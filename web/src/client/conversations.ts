// Conversations and groups as their signed state chains say: creating
// them, members and roles, leaving, title, avatar and timer, each change a
// signed event appended to the chain. Title and avatar are sealed under a
// state key shared with the members in the conversation (and replaced when
// someone is removed). Also the conversation list as the screens show it.
import { b64decode, b64encodePadded, fromHex, fromUtf8, randomId, toHex, utf8 } from "../crypto/base64";
import { keyIdOf, newStateKey, sealState, unsealState } from "../crypto/statekey";
import { MESSAGE_TYPE, type ConversationInfo, type ConversationList, type StateChain, type StateContent, type StateEvent } from "../gen/proto";
import { ServerError, type Api } from "./api";
import type { Attachments } from "./attachments";
import { newChain, signEvent, verifyChain } from "./chain";
import type { Db } from "./db";
import type { Keys } from "./keys";
import type { AttachmentEntry, Contact, ConversationView, Portal, Role } from "./model";
import type { ConversationState } from "./state";
import {
  ClientError,
  parseAddress,
  type Account,
  type Chain,
  type ChainStore,
  type MessageLog,
  type ProfileSharing,
  type Sender,
} from "./types";
import type { Vault } from "./vault";

/** a conversation's state keys: the one sealing now, and all by id */
interface StateKeys {
  current: string;
  keys: Record<string, string>;
}

export class Conversations implements ChainStore {
  private readonly chains = new Map<string, Chain>();
  private readonly stateKeys = new Map<string, StateKeys>();
  /** unsealed from the chains: title, and the avatar's object URL */
  private readonly titles = new Map<string, string | null>();
  private readonly avatars = new Map<string, string | null>();

  constructor(
    private readonly account: Account,
    private readonly db: Db,
    private readonly vault: Vault,
    private readonly api: Api,
    private readonly attachments: Attachments,
    private readonly log: MessageLog,
    private readonly sender: Sender,
    private readonly profiles: ProfileSharing,
    /** the conversations changed: the screens redraw */
    private readonly changed: () => void,
  ) {}

  /** The chains and state keys of the profile (title and avatar are
   * unsealed by refreshDerived). */
  async load(keys: Keys): Promise<void> {
    for (const row of await this.db.all("chains")) {
      try {
        const events = row.events as StateEvent[];
        this.chains.set(row.conversation, { events, state: await verifyChain(keys, events) });
      } catch (e) {
        console.warn("stored chain no longer verifies", e);
      }
    }
    const sealedKeys = await this.db.get("kv", "statekeys");
    if (sealedKeys) {
      const all = await this.vault.open<Record<string, StateKeys>>(sealedKeys.value as Uint8Array);
      for (const [c, v] of Object.entries(all)) this.stateKeys.set(c, v);
    }
  }

  /** Fetch the chains that changed while this device was away. */
  async catchUp(): Promise<void> {
    const list = await this.api.call<ConversationList>("GET", "/conversations");
    for (const info of list.conversations) {
      const known = this.chains.get(info.conversation);
      if (!known || known.state.depth < info.depth) await this.chain(info.conversation, true).catch((e: unknown) => console.warn(e));
    }
  }

  known(conversation: string): Chain | undefined {
    return this.chains.get(conversation);
  }

  all(): Iterable<[string, Chain]> {
    return this.chains.entries();
  }

  ids(): Iterable<string> {
    return this.chains.keys();
  }

  async chain(conversation: string, refresh = false): Promise<Chain> {
    const keys = this.account.need();
    const cached = this.chains.get(conversation);
    if (cached && !refresh) return cached;
    let events: StateEvent[];
    try {
      events = (await this.api.call<StateChain>("GET", `/conversations/${conversation}/state`)).events;
    } catch (e) {
      if (e instanceof ServerError && e.code === "not_found") throw new ClientError(`not a member of ${conversation}`);
      throw e;
    }
    const state = await verifyChain(keys, events);
    await this.remember(conversation, events, state);
    return { events, state };
  }

  async remember(conversation: string, events: StateEvent[], state: ConversationState): Promise<void> {
    this.chains.set(conversation, { events, state });
    await this.db.put("chains", { conversation, events, updatedMs: Date.now() });
    await this.refreshDerived(conversation);
    this.changed();
  }

  async startChat(address: string): Promise<string> {
    const keys = this.account.need();
    const other = parseAddress(address);
    if (other === keys.user) throw new ClientError("that is your own address");
    for (const [id, { state }] of this.chains) {
      const members = Object.keys(state.members);
      if (state.kind === "direct" && members.length === 2 && members.includes(other)) return id;
    }
    return this.create("direct", [other]);
  }

  async createGroup(title: string, members: string[]): Promise<string> {
    const keys = this.account.need();
    const users = [...new Set(members.map(parseAddress))].filter((u) => u !== keys.user);
    const conversation = await this.create("group", users);
    if (title.trim()) await this.rename(conversation, title.trim());
    return conversation;
  }

  private async create(kind: "direct" | "group", members: string[]): Promise<string> {
    const keys = this.account.need();
    await keys.refresh(members);
    for (const member of members) {
      if (!keys.pinned(member)) throw new ClientError(`${member} has no taube account here`);
    }
    const conversation = randomId();
    const events = await newChain(keys, conversation, kind, members, Date.now());
    await this.api.call<ConversationInfo>("POST", "/conversations", { events });
    await this.remember(conversation, events, await verifyChain(keys, events));
    await this.profiles.sendProfile(conversation);
    return conversation;
  }

  /** Sign `content` as the next event; on a conflict (someone else's event
   * came first) fetch the chain and sign again. */
  private async append(conversation: string, content: StateContent): Promise<void> {
    const keys = this.account.need();
    for (let attempt = 0; attempt < 3; attempt++) {
      const { state } = await this.chain(conversation, true);
      const event = await signEvent(keys, conversation, state.depth + 1, state.head, content, Date.now());
      try {
        await this.api.call("POST", `/conversations/${conversation}/state`, event);
      } catch (e) {
        if (e instanceof ServerError && e.code === "conflict") continue;
        throw e;
      }
      await this.chain(conversation, true);
      return;
    }
    throw new ClientError("the conversation keeps changing; try again");
  }

  async addMember(conversation: string, address: string, role: Role = "member"): Promise<void> {
    const keys = this.account.need();
    const user = parseAddress(address);
    await keys.refresh([user]);
    if (!keys.pinned(user)) throw new ClientError(`${user} has no taube account here`);
    const content: StateContent = role === "member"
      ? { type: "member", target: user, membership: "join" }
      : { type: "member", target: user, membership: "join", role };
    await this.append(conversation, content);
    await this.sendStateKey(conversation);
  }

  async removeMember(conversation: string, address: string): Promise<void> {
    await this.append(conversation, { type: "member", target: parseAddress(address), membership: "leave" });
    if (this.stateKeys.has(conversation)) {
      const { id, key } = newStateKey();
      await this.addStateKey(conversation, id, key);
      await this.sendStateKey(conversation);
    }
  }

  async setRole(conversation: string, address: string, role: Role): Promise<void> {
    const target = parseAddress(address);
    const content: StateContent = role === "member"
      ? { type: "member", target, membership: "join" }
      : { type: "member", target, membership: "join", role };
    await this.append(conversation, content);
  }

  async leave(conversation: string): Promise<void> {
    await this.append(conversation, { type: "member", target: this.account.need().user, membership: "leave" });
  }

  async rename(conversation: string, title: string): Promise<void> {
    const sealed = await this.seal(conversation, "title", utf8(title.slice(0, 200)));
    await this.append(conversation, { type: "title", sealed: b64encodePadded(sealed) });
  }

  async setAvatar(conversation: string, image: Blob): Promise<void> {
    const entry = await this.attachments.upload(image, "avatar.jpg", "image", null);
    await this.sender.send(conversation, MESSAGE_TYPE.avatar, { attachments: [entry] });
    const sealed = await this.seal(conversation, "avatar", utf8(JSON.stringify(entry)));
    await this.append(conversation, { type: "avatar", sealed: b64encodePadded(sealed) });
  }

  async setTimer(conversation: string, seconds: number): Promise<void> {
    await this.append(conversation, { type: "timer", seconds });
  }

  private async seal(conversation: string, field: "title" | "avatar", data: Uint8Array): Promise<Uint8Array> {
    let entry = this.stateKeys.get(conversation);
    if (!entry || !entry.keys[entry.current]) {
      const { id, key } = newStateKey();
      await this.addStateKey(conversation, id, key);
      await this.sendStateKey(conversation);
      entry = this.stateKeys.get(conversation)!;
    }
    return sealState(entry.current, fromHex(entry.keys[entry.current]!), conversation, field, data);
  }

  /** A state key from a member's message (kept if it is well-formed). */
  async acceptStateKey(conversation: string, content: Record<string, unknown>): Promise<void> {
    const id = String(content.id ?? "");
    const key = String(content.key ?? "");
    if (/^[0-9a-f]{16}$/.test(id) && /^[0-9a-f]{64}$/.test(key)) await this.addStateKey(conversation, id, fromHex(key));
  }

  private async addStateKey(conversation: string, id: string, key: Uint8Array, makeCurrent = true): Promise<void> {
    const entry = this.stateKeys.get(conversation) ?? { current: id, keys: {} };
    entry.keys[id] = toHex(key);
    if (makeCurrent) entry.current = id;
    this.stateKeys.set(conversation, entry);
    await this.db.put("kv", { key: "statekeys", value: await this.vault.seal(Object.fromEntries(this.stateKeys)) });
    await this.refreshDerived(conversation);
  }

  private async sendStateKey(conversation: string): Promise<void> {
    const entry = this.stateKeys.get(conversation);
    const key = entry?.keys[entry.current];
    if (entry && key) await this.sender.send(conversation, MESSAGE_TYPE.stateKey, { id: entry.current, key });
  }

  /** Title and avatar: unsealed from the latest signed state event (of
   * `only`, or of every conversation). */
  async refreshDerived(only?: string): Promise<void> {
    for (const [conversation, { events }] of this.chains) {
      if (only && conversation !== only) continue;
      this.titles.set(conversation, await this.unsealed(conversation, events, "title"));
      const avatar = await this.unsealed(conversation, events, "avatar");
      let url: string | null = null;
      if (avatar) {
        try {
          url = await this.attachments.url(JSON.parse(avatar) as AttachmentEntry);
        } catch {
          url = null; // its message has not arrived yet
        }
      }
      this.avatars.set(conversation, url);
    }
  }

  private async unsealed(conversation: string, events: StateEvent[], field: "title" | "avatar"): Promise<string | null> {
    for (let i = events.length - 1; i >= 0; i--) {
      const content = events[i]!.content;
      if (content.type !== field) continue;
      const sealed = b64decode(content.sealed);
      const key = this.stateKeys.get(conversation)?.keys[keyIdOf(sealed)];
      if (!key) return null;
      const text = await unsealState(fromHex(key), conversation, field, sealed);
      return text === null ? null : fromUtf8(text);
    }
    return null;
  }

  /** The conversation list, latest first; `typing`, `contacts` and
   * `portals` (see portals.ts) as the screens have them now. */
  views(typing: Record<string, string[]>, contacts: Record<string, Contact>, portals: Map<string, Portal>): ConversationView[] {
    const me = this.account.keys?.user ?? "";
    const views: ConversationView[] = [];
    for (const [id, { state, events }] of this.chains) {
      if (!(me in state.members)) continue;
      const last = this.log.history(id).at(-1) ?? null;
      const others = Object.keys(state.members).filter((u) => u !== me);
      const contact = (u: string) => contacts[u];
      const portal = portals.get(id) ?? null;
      const title = state.kind === "direct"
        ? contact(others[0] ?? "")?.alias || contact(others[0] ?? "")?.name || others[0] || "Just you"
        : this.titles.get(id) || portal?.title || portal?.chat || others.map((u) => contact(u)?.alias || contact(u)?.name || u.split("@")[0]).join(", ") || "New group";
      views.push({
        id,
        kind: state.kind,
        title,
        avatar: state.kind === "direct" ? contact(others[0] ?? "")?.avatar ?? null : this.avatars.get(id) ?? null,
        members: state.members,
        myRole: state.members[me] ?? null,
        unread: this.log.unread(id),
        last,
        lastTs: last?.ts ?? events.at(-1)?.ts ?? 0,
        timerSeconds: state.timerSeconds,
        typing: (typing[id] ?? []).filter((u) => u !== me),
        portal,
      });
    }
    return views.sort((a, b) => b.lastTs - a.lastTs);
  }
}
