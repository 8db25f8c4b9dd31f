// Invite links: a first contact verified from the start (the port of
// taube.client.invites; the protocol is in docs/protocol.md).
//
//   https://<server>/#/invite/<inviter>/<fingerprint>/<secret>[/<name>]
//
// The fragment never reaches the server. The server gets only the invite's
// id = HMAC-SHA-256(secret, "taube invite id") and keeps its SHA-256, to
// expire, revoke and use it up. The joiner checks the inviter's identity key
// against the fingerprint, pins it as verified, starts the chat and proves
// to the inviter's devices (Olm to-device) that it holds the secret:
// HMAC-SHA-256(secret, "taube invite proof" | inviter | inviter's key |
// joiner | joiner's key). The inviter's device that made the link checks it
// against the joiner's pinned key and marks the joiner verified.
import { b64decode, b64urlencode, bytesEqual, randomBytes, utf8 } from "../crypto/base64";
import type { VerifiedDevice } from "../crypto/keys";
import type { Invite } from "../gen/proto";
import { ServerError, type Api } from "./api";
import type { TaubeCarrier } from "./carrier";
import type { Db } from "./db";
import { ClientError, parseAddress, type Account, type Trust } from "./types";

export const INVITE_PREFIX = "taube.invite.";
export const INVITE_PROOF = "taube.invite.proof";
const KV = "invite:";

export interface InviteLink {
  /** the origin the link opens (scheme://host[:port]) */
  server: string;
  inviter: string;
  fingerprint: string;
  secret: string;
  /** the inviter's display name, a hint shown to the newcomer */
  name: string;
}

/** The link is malformed, forged, used up, expired or revoked: `message` says which. */
export class InviteError extends ClientError {}

function unb64url(s: string): Uint8Array {
  return b64decode(s.replace(/-/gu, "+").replace(/_/gu, "/"));
}

async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
}

async function hmac(secret: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", secret as BufferSource, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, data as BufferSource));
}

/** SHA-256 of the identity key's 32 bytes, first 16, base64url */
export async function fingerprint(identityKey: string): Promise<string> {
  return b64urlencode((await sha256(b64decode(identityKey))).slice(0, 16));
}

export async function inviteId(secret: string): Promise<string> {
  return b64urlencode(await hmac(unb64url(secret), utf8("taube invite id")));
}

export async function inviteProof(secret: string, inviter: string, inviterKey: string, joiner: string, joinerKey: string): Promise<string> {
  const message = ["taube invite proof", inviter, inviterKey, joiner, joinerKey].join("\n");
  return b64urlencode(await hmac(unb64url(secret), utf8(message)));
}

export function inviteUrl(link: InviteLink): string {
  const url = `${link.server}/#/invite/${encodeURIComponent(link.inviter).replace("%40", "@")}/${link.fingerprint}/${link.secret}`;
  return link.name ? `${url}/${encodeURIComponent(link.name)}` : url;
}

/** An invite link, or its fragment (`#/invite/...`); InviteError if damaged. */
export function parseInvite(text: string, origin?: string): InviteLink {
  const trimmed = text.trim();
  const at = trimmed.indexOf("#/invite/");
  if (at < 0) throw new InviteError("this is not an invite link");
  const server = at === 0 ? (origin ?? location.origin) : trimmed.slice(0, at).replace(/\/$/u, "");
  const parts = trimmed.slice(at + "#/invite/".length).split("/");
  if (parts.length !== 3 && parts.length !== 4) throw new InviteError("this invite link is damaged: parts are missing");
  try {
    const inviter = parseAddress(decodeURIComponent(parts[0] ?? ""));
    const fp = parts[1] ?? "";
    const secret = parts[2] ?? "";
    if (unb64url(fp).length !== 16 || unb64url(secret).length !== 16) throw new Error("wrong length");
    const name = parts.length === 4 ? decodeURIComponent(parts[3] ?? "").slice(0, 100) : "";
    return { server, inviter, fingerprint: fp, secret, name };
  } catch {
    throw new InviteError("this invite link is damaged: copy the whole link and try again");
  }
}

/** what was made here: the secret stays on this device */
interface Made {
  secret: string;
  expiresMs: number;
  joiner?: string;
}

export class Invites {
  readonly prefix = INVITE_PREFIX;

  constructor(
    private readonly account: Account,
    private readonly db: Db,
    private readonly api: Api,
    private readonly carrier: TaubeCarrier,
    private readonly trust: Trust,
    /** the direct chat with a user (made if needed) */
    private readonly startChat: (address: string) => Promise<string>,
    /** someone joined by one of our links and proved it */
    private readonly joined: (user: string) => void,
  ) {}

  async create(name: string): Promise<{ link: InviteLink; url: string; expiresMs: number }> {
    const keys = this.account.need();
    const link: InviteLink = {
      server: location.origin,
      inviter: keys.user,
      fingerprint: await fingerprint(keys.identity.publicKey),
      secret: b64urlencode(randomBytes(16)),
      name: name.slice(0, 100),
    };
    const id = await inviteId(link.secret);
    const created = await this.api.call<Invite>("POST", "/invites", { id });
    await this.db.put("kv", { key: KV + id, value: { secret: link.secret, expiresMs: created.expires_ms } satisfies Made });
    return { link, url: inviteUrl(link), expiresMs: created.expires_ms };
  }

  async revoke(link: InviteLink): Promise<void> {
    await this.api.call("DELETE", `/invites/${await inviteId(link.secret)}`);
  }

  /** Whose the link is and whether it can still be used (no account needed). */
  async check(link: InviteLink): Promise<Invite> {
    const invite = await this.server<Invite>("/invites/check", link);
    if (invite.inviter !== link.inviter) throw new InviteError("this invite link was changed: it may be forged");
    return invite;
  }

  /** Check the link against the inviter's key, use it up, start the verified chat. */
  async join(link: InviteLink): Promise<string> {
    const keys = this.account.need();
    if (link.inviter === keys.user) throw new InviteError("this is your own invite link: send it to the person you want to talk to");
    await keys.refresh([link.inviter]);
    const pinned = keys.pinned(link.inviter);
    const expected = pinned ? utf8(await fingerprint(pinned.identityKey)) : null;
    if (!pinned || !expected || !bytesEqual(expected, utf8(link.fingerprint))) {
      throw new InviteError(`this invite link does not match ${link.inviter}'s key: it may be forged`);
    }
    const redeemed = await this.server<Invite>("/invites/redeem", link);
    if (redeemed.inviter !== link.inviter) throw new InviteError("this invite link was made by someone else: it may be forged");
    await this.trust.markVerified(link.inviter);
    const conversation = await this.startChat(link.inviter);
    const mac = await inviteProof(link.secret, link.inviter, pinned.identityKey, keys.user, keys.identity.publicKey);
    const id = await inviteId(link.secret);
    for (const device of await keys.devicesOf([link.inviter])) await this.carrier.sendToDevice(device, INVITE_PROOF, { id, mac });
    return conversation;
  }

  /** A joiner's proof: on the device that made the link, verify them. */
  async onMessage(sender: VerifiedDevice, type: string, content: Record<string, unknown>): Promise<void> {
    if (type !== INVITE_PROOF) return;
    const id = String(content.id ?? "");
    const made = id.length === 43 ? ((await this.db.get("kv", KV + id))?.value as Made | undefined) : undefined;
    if (!made || made.joiner) return;
    const keys = this.account.need();
    const pinned = keys.pinned(sender.user);
    if (!pinned || pinned.identityKey !== sender.identityKey) return;
    const expected = await inviteProof(made.secret, keys.user, keys.identity.publicKey, sender.user, pinned.identityKey);
    if (!bytesEqual(utf8(expected), utf8(String(content.mac ?? "")))) {
      console.info("invite proof refused");
      return;
    }
    await this.trust.markVerified(sender.user);
    await this.db.put("kv", { key: KV + id, value: { ...made, joiner: sender.user } satisfies Made });
    this.joined(sender.user);
  }

  private async server<T>(path: string, link: InviteLink): Promise<T> {
    try {
      return await this.api.call<T>("POST", path, { id: await inviteId(link.secret) });
    } catch (e) {
      if (e instanceof ServerError && !e.transient) throw new InviteError(e.message);
      throw e;
    }
  }
}
