// Profiles: our own (name and picture, shared encrypted in every
// conversation) and our contacts' as their profile messages arrive, with
// whether we verified them.
import { signal } from "@preact/signals";
import { MESSAGE_TYPE } from "../gen/proto";
import { isEntry, type Attachments } from "./attachments";
import type { Db } from "./db";
import type { AttachmentEntry, Contact } from "./model";
import type { Account, Profiles, Sender, Trust } from "./types";

/** where this user's own profile picture is kept */
const OWN_AVATAR = "own-avatar";

export class Contacts implements Profiles, Trust {
  readonly contacts = signal<Record<string, Contact>>({});

  constructor(
    private readonly account: Account,
    private readonly db: Db,
    private readonly attachments: Attachments,
    private readonly sender: Sender,
  ) {}

  /** user → the name given them on this device */
  private aliases: Record<string, string> = {};

  async load(): Promise<void> {
    this.aliases = ((await this.db.get("kv", "aliases"))?.value as Record<string, string> | undefined) ?? {};
    const contacts: Record<string, Contact> = {};
    for (const p of await this.db.all("profiles")) contacts[p.user] = this.contactOf(p.user, p.name, p.avatar);
    for (const user of Object.keys(this.aliases)) contacts[user] ??= this.contactOf(user, "", null);
    this.contacts.value = contacts;
  }

  /** Call `user` `alias` on this device (empty: by their own name again). */
  async rename(user: string, alias: string): Promise<void> {
    const name = alias.trim().slice(0, 100);
    if (name) this.aliases[user] = name;
    else delete this.aliases[user];
    await this.db.put("kv", { key: "aliases", value: { ...this.aliases } });
    const current = this.contacts.value[user] ?? this.contactOf(user, "", null);
    const next: Contact = { ...current };
    if (name) next.alias = name;
    else delete next.alias;
    this.contacts.value = { ...this.contacts.value, [user]: next };
  }

  contact(user: string): Contact | undefined {
    return this.contacts.value[user];
  }

  /** Keep our display name (and picture; `null` keeps the current one). The
   * picture is kept here and uploaded afresh for each conversation: the
   * server deletes a blob once the members of the conversation that named
   * it have it. */
  async saveProfile(name: string, avatar: Blob | null): Promise<void> {
    const content: Record<string, unknown> = { name: name.slice(0, 100) };
    const previous = (await this.db.get("kv", "own_profile"))?.value as Record<string, unknown> | undefined;
    if (avatar) {
      await this.db.put("attachments", { blob: OWN_AVATAR, data: avatar });
      content.avatar_name = "avatar.jpg";
    } else if (previous?.avatar_name) content.avatar_name = previous.avatar_name;
    await this.db.put("kv", { key: "own_profile", value: content });
  }

  /** Share our profile, encrypted, in `conversation`. */
  async sendProfile(conversation: string): Promise<void> {
    const own = (await this.db.get("kv", "own_profile"))?.value as Record<string, unknown> | undefined;
    if (!own) return;
    const content: Record<string, unknown> = { name: own.name ?? "" };
    const picture = own.avatar_name ? await this.db.get("attachments", OWN_AVATAR) : undefined;
    if (picture) {
      const entry = await this.attachments.upload(picture.data, String(own.avatar_name), "image", null);
      content.avatar = entry;
      content.attachments = [entry];
    }
    await this.sender.send(conversation, MESSAGE_TYPE.profile, content);
  }

  /** A contact's profile message (an older one than we know is ignored). */
  async rememberProfile(user: string, ts: number, content: Record<string, unknown>): Promise<void> {
    const known = await this.db.get("profiles", user);
    if (known && known.ts >= ts) return;
    const avatar = isEntry(content.avatar) ? (content.avatar as unknown as Record<string, unknown>) : null;
    const row = { user, name: String(content.name ?? "").slice(0, 100), avatar, ts };
    await this.db.put("profiles", row);
    this.contacts.value = { ...this.contacts.value, [user]: this.contactOf(user, row.name, avatar) };
    if (avatar) {
      void this.attachments.url(avatar as unknown as AttachmentEntry).then((url) => {
        const current = this.contacts.value[user];
        if (current) this.contacts.value = { ...this.contacts.value, [user]: { ...current, avatar: url } };
      }).catch(() => undefined);
    }
  }

  async markVerified(user: string): Promise<void> {
    await this.account.need().markVerified(user);
    const current = this.contacts.value[user] ?? { user, name: "", avatar: null, verified: false };
    this.contacts.value = { ...this.contacts.value, [user]: { ...current, verified: true } };
  }

  private contactOf(user: string, name: string, avatar: Record<string, unknown> | null): Contact {
    const blob = avatar ? String(avatar.blob ?? "") : "";
    const contact: Contact = { user, name, avatar: this.attachments.cachedUrl(blob), verified: this.account.keys?.pinned(user)?.verified ?? false };
    const alias = this.aliases[user];
    if (alias) contact.alias = alias;
    return contact;
  }
}
