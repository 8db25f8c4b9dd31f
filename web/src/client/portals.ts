// Portals: conversations that reach a chat on another network (the SDK's
// taube.client.portals). What links a conversation to that chat is a
// `portal` message in it, end-to-end encrypted like any other, so the
// server never sees where it leads. Any device can open one; the connector
// serving the network (a device of the user's own: `taube mail connect`)
// answers with a portal message naming itself (`by`), brings the other
// side's messages in as `text` messages carrying `remote`, and says how it
// sent the user's messages on in `relay` annotations.
import { MESSAGE_TYPE, type KeysResponse } from "../gen/proto";
import type { Api } from "./api";
import type { Portal, Relayed, Remote } from "./model";
import type { Sender } from "./types";

/** a conversation's link to a chat on another network */
export const PORTAL = MESSAGE_TYPE.portal;
/** a connector says how it sent one of the user's messages on */
export const RELAY = MESSAGE_TYPE.relay;

/** the network of chat over e-mail */
export const EMAIL = "email";

/** A portal message's content (the newest one of a conversation counts);
 * `device` sent it: only that device can say it serves the portal. */
export function portalOf(content: Record<string, unknown>, device: string): Portal | null {
  const { network, chat, peers, title, by } = content;
  if (typeof network !== "string" || typeof chat !== "string" || !chat) return null;
  return {
    network,
    chat,
    peers: Array.isArray(peers) ? peers.map(String) : [],
    title: String(title ?? "").slice(0, 200),
    by: typeof by === "string" && by && by === device ? by : null,
  };
}

/** The portal message's content for `portal` (without `by` when nobody serves it). */
export function portalContent(portal: Portal): Record<string, unknown> {
  const content: Record<string, unknown> = { network: portal.network, chat: portal.chat, peers: [...portal.peers], title: portal.title };
  if (portal.by !== null) content.by = portal.by;
  return content;
}

/** Who wrote a message on another network (a text message's `remote`). */
export function remoteOf(value: unknown): Remote | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const remote = value as Record<string, unknown>;
  if (typeof remote.sender !== "string") return null;
  return {
    network: String(remote.network ?? ""),
    sender: remote.sender,
    name: String(remote.name ?? "").slice(0, 100),
    encrypted: remote.encrypted === true,
  };
}

/** How a connector sent a message on (a relay annotation's content). */
export function relayedOf(content: Record<string, unknown>): Relayed {
  return {
    network: String(content.network ?? ""),
    encrypted: content.encrypted === true,
    error: String(content.error ?? "").slice(0, 300),
    plainTo: Array.isArray(content.plain_to) ? content.plain_to.slice(0, 100).map(String) : [],
  };
}

/** What portals need of the message log. */
export interface PortalLog {
  /** the newest message of `type` per conversation: its content and sending device */
  latest(type: string, only?: string): Map<string, { content: Record<string, unknown>; device: string }>;
}

/** What portals need of the conversations: a new group of the user's own. */
export interface GroupMaker {
  createGroup(title: string, members: string[]): Promise<string>;
}

export class Portals {
  constructor(
    private readonly log: PortalLog,
    private readonly groups: GroupMaker,
    private readonly sender: Sender,
  ) {}

  get(conversation: string): Portal | null {
    const found = this.log.latest(PORTAL, conversation).get(conversation);
    return found ? portalOf(found.content, found.device) : null;
  }

  all(): Map<string, Portal> {
    const portals = new Map<string, Portal>();
    for (const [conversation, { content, device }] of this.log.latest(PORTAL)) {
      const portal = portalOf(content, device);
      if (portal) portals.set(conversation, portal);
    }
    return portals;
  }

  find(network: string, chat: string): string | null {
    for (const [conversation, portal] of this.all()) {
      if (portal.network === network && portal.chat.toLowerCase() === chat.toLowerCase()) return conversation;
    }
    return null;
  }

  /** The conversation for `portal`'s chat: the existing one, or a new one
   * (a group of the user's own devices, titled for the chat). */
  async open(portal: Portal): Promise<string> {
    const found = this.find(portal.network, portal.chat);
    if (found !== null) return found;
    const conversation = await this.groups.createGroup(portal.title, []);
    await this.sender.send(conversation, PORTAL, portalContent(portal));
    return conversation;
  }
}

/** Is `address` on the user's own domain (the only one this server hosts)? */
export function isOwnDomain(address: string, user: string): boolean {
  return domainOf(address) === domainOf(user);
}

/** How long "this address has no taube account" is believed (ms). */
const NOT_ON_TAUBE_MS = 300_000;

/** Which addresses on other domains have a taube account there (federation;
 * the SDK's `Portals.by_mail`). The user's own server answers: it asks the
 * other domain's server, the browser never talks to a foreign server. */
export class Reach {
  private readonly onTaube = new Set<string>();
  private readonly notOnTaube = new Map<string, number>();

  constructor(private readonly api: Api) {}

  /** Is `address` reached by e-mail: on another domain, without a taube account there? */
  async byMail(address: string, user: string): Promise<boolean> {
    if (isOwnDomain(address, user) || this.onTaube.has(address)) return false;
    if ((this.notOnTaube.get(address) ?? 0) > Date.now()) return true;
    const found = await this.api.call<KeysResponse>("POST", "/keys/query", { users: [address] });
    if (found.users.some((entry) => entry.user === address && entry.identity)) {
      this.onTaube.add(address);
      return false;
    }
    this.notOnTaube.set(address, Date.now() + NOT_ON_TAUBE_MS);
    return true;
  }
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1);
}

/** The portal `Client.start_chat` opens for an address on another domain. */
export function emailPortal(address: string): Portal {
  return { network: EMAIL, chat: address, peers: [address], title: address, by: null };
}
