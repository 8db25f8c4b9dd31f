// The client engine: the browser's port of taube.client.Client, and the one
// face the screens see (the `Client` of model.ts). It makes the parts, each
// with one job and its own state, wires them through the small interfaces
// of types.ts, and publishes what the screens show as signals.
//
//   session        the account on this device, its keys and settings
//   linking        adding a device to the account (history.ts hands it the history)
//   conversations  chains, groups, members, title, avatar, timer
//   outbox         what is being sent, until the server has it
//   carrier        where a message leaves: encrypted, keys shared, over connection
//   connection     the WebSocket and its frames
//   receiver       what arrives: decrypted, verified, stored, acknowledged
//   messages       the local message rows and what the user sees of them
//   portals        conversations that reach a chat on another network (e-mail)
//   attachments    encrypted blobs up and down
//   contacts       profiles, ours and our contacts'
//   verification   safety numbers, QR and emoji verification
//   connectors     the user's devices that relay e-mail, set up from here
//   archives       the portable history, exported and imported
//   invites        invite links: a first contact verified from the start
//   people         presence, the opt-in directory, privacy settings
//
// Guarantees, as in the SDK (DESIGN §6): a message is stored before it is
// acknowledged (nothing lost), a message id is shown once however often it
// arrives (nothing twice), and the outbox keeps what was typed until the
// server confirmed it durable, across reloads and offline periods.
import { computed, signal } from "@preact/signals";
import { initOlm } from "../crypto/olm";
import { MESSAGE_TYPE } from "../gen/proto";
import { Api } from "./api";
import { Attachments } from "./attachments";
import { TaubeCarrier } from "./carrier";
import { Connection } from "./connection";
import { Archives } from "./archive";
import { Calls } from "./calls";
import { Connectors } from "./connectors";
import { Contacts } from "./contacts";
import { Conversations } from "./conversations";
import { Db } from "./db";
import { History } from "./history";
import { InviteError, Invites, parseInvite } from "./invites";
import type { Keys } from "./keys";
import { Linking } from "./linking";
import { Messages } from "./messages";
import type {
  AttachmentEntry,
  Client,
  DeviceView,
  InviteView,
  MessageView,
  NewAccount,
  PresenceView,
  PrivacySettings,
  Role,
  Settings,
  State,
} from "./model";
import { Outbox } from "./outbox";
import { OwnHistory } from "./own-history";
import { People } from "./people";
import { emailPortal, Portals, Reach } from "./portals";
import { NoticeStore } from "./notices";
import { Receiver } from "./receiver";
import { Session } from "./session";
import { ClientError, parseAddress, type ChainSource } from "./types";
import { Vault } from "./vault";
import { Verification } from "./verification";

export { ClientError, parseAddress } from "./types";

export class Engine implements Client {
  private readonly openSig = signal<string | null>(null);
  /** bumped on every change of messages or conversations */
  private readonly version = signal(0);
  private readonly errorSig = signal<string | null>(null);

  private readonly session: Session;
  private readonly attachments: Attachments;
  private readonly messages: Messages;
  private readonly connection: Connection;
  private readonly carrier: TaubeCarrier;
  private readonly outbox: Outbox;
  private readonly contacts: Contacts;
  private readonly conversations: Conversations;
  private readonly portals: Portals;
  private readonly history: History;
  private readonly linking: Linking;
  private readonly verification: Verification;
  private readonly receiver: Receiver;
  private readonly noticeStore: NoticeStore;
  private readonly invites: Invites;
  private readonly people: People;
  private readonly reach: Reach;
  private readonly ownHistory: OwnHistory;
  /** logged in with the recovery code: ask the other devices for history once online */
  private wantHistory = false;
  /** the user's connector devices (e-mail), found and set up from here */
  readonly connectors: Connectors;
  /** voice and video calls */
  readonly calls: Calls;
  /** the portable history: export and import (taube.client.archive's format) */
  readonly archives: Archives;

  readonly state: State;

  private constructor(db: Db, vault: Vault, api: Api) {
    const changed = () => this.bump();
    const report = (e: unknown) => this.fail(e);
    const begin = (keys: Keys) => this.begin(keys);
    this.session = new Session(db, vault, api, begin);
    const account = this.session;
    this.attachments = new Attachments(db, api);
    this.messages = new Messages(account, db, changed);
    this.noticeStore = new NoticeStore(db);
    this.connection = new Connection({ online: () => void this.online(), report });
    // the one loop: the carrier and the outbox need the chains (members,
    // timer), and the conversations send through the outbox
    const chains: ChainSource = { chain: (conversation, refresh) => this.conversations.chain(conversation, refresh) };
    this.carrier = new TaubeCarrier(account, db, api, chains, this.connection);
    this.outbox = new Outbox(account, db, chains, this.messages, this.attachments, this.carrier, report, changed);
    this.contacts = new Contacts(account, db, this.attachments, this.outbox);
    this.conversations = new Conversations(account, db, vault, api, this.attachments, this.messages, this.outbox, this.contacts, changed);
    this.portals = new Portals(this.messages, this.conversations, this.outbox);
    this.history = new History(db, api, this.attachments, this.conversations, this.messages);
    this.linking = new Linking(account, db, vault, api, this.carrier, this.history, begin);
    this.verification = new Verification(account, this.carrier, this.contacts, this.outbox, report);
    this.invites = new Invites(account, db, api, this.carrier, this.contacts, (address) => this.startChat(address), changed);
    this.people = new People(api);
    this.reach = new Reach(api);
    this.ownHistory = new OwnHistory(account, this.carrier, this.history, () => this.reloadProfile());
    this.connectors = new Connectors(account, this.carrier);
    this.calls = new Calls(account, api, this.carrier, chains, this.outbox);
    this.archives = new Archives({
      account,
      db,
      chains: this.conversations,
      rows: this.messages,
      titles: () => new Map(this.state.conversations.value.map((c) => [c.id, c.title])),
      openPortal: (portal) => this.portals.open(portal),
      createGroup: (title, members) => this.conversations.createGroup(title, members),
      changed,
    });
    this.receiver = new Receiver({
      account,
      db,
      rows: this.messages,
      chains: this.conversations,
      profiles: this.contacts,
      attachments: this.attachments,
      links: this.linking,
      sas: this.verification,
      connectors: this.connectors,
      inboxes: [this.invites, this.ownHistory, this.calls],
      sender: this.outbox,
      changed,
      noticeStore: this.noticeStore,
    });
    this.state = {
      session: this.session.session,
      connection: this.connection.status,
      conversations: computed(() => {
        void this.version.value;
        return this.conversations.views(this.receiver.typing.value, this.contacts.contacts.value, this.portals.all());
      }),
      messages: computed(() => {
        void this.version.value;
        const open = this.openSig.value;
        return open ? this.messages.history(open) : [];
      }),
      notices: computed(() => {
        const open = this.openSig.value;
        return this.receiver.notices.value.filter((n) => n.conversation === open);
      }),
      contacts: this.contacts.contacts,
      transfers: this.attachments.transfers,
      verification: this.verification.verification,
      settings: this.session.settings,
      error: this.errorSig,
    };
  }

  static async create(): Promise<Engine> {
    await holdProfileLock();
    await initOlm();
    const db = await Db.open();
    const engine = new Engine(db, await Vault.open(db), new Api());
    const keys = await engine.session.resume();
    if (keys !== null) await engine.begin(keys);
    return engine;
  }

  /** Signed in (now or on an earlier visit): load the profile, connect. */
  private async begin(keys: Keys): Promise<void> {
    this.session.adopt(keys);
    keys.onChange = () => this.receiver.emitKeyChanges();
    await this.messages.load(await this.outbox.queued());
    this.receiver.notices.value = [...(await this.noticeStore.load()), ...this.receiver.notices.value];
    await this.conversations.load(keys);
    await this.contacts.load();
    this.session.announce();
    await this.conversations.refreshDerived();
    this.bump();
    this.connection.start(keys.token, this.receiver);
    window.setInterval(() => void this.messages.expire(), 1000);
    this.messages.warmIndex(); // search is ready before the first keystroke
  }

  /** The server welcomed us: top up one-time keys, fetch the chains that
   * changed meanwhile, and send what waited. */
  private async online(): Promise<void> {
    const keys = this.session.need();
    try {
      await keys.replenish();
      await this.conversations.catchUp();
      if (this.wantHistory) {
        this.wantHistory = false;
        await this.ownHistory.request();
      }
    } catch (e) {
      console.warn("after welcome", e);
    }
    this.outbox.wake();
  }

  private bump(): void {
    this.version.value++;
  }

  private fail(e: unknown): void {
    this.errorSig.value = e instanceof Error ? e.message : String(e);
  }

  dismissError(): void {
    this.errorSig.value = null;
  }

  /** Resolves when the backlog is in (tests and the first render use it). */
  whenSynced(): Promise<void> {
    return this.connection.whenSynced();
  }

  // ================================================================ account

  async register(address: string, password: string, deviceName: string, name = "", picture: Blob | null = null): Promise<NewAccount> {
    const account = await this.session.register(address, password, deviceName);
    if (name.trim() || picture) await this.setProfile(name.trim(), picture);
    return account;
  }

  startOver(address: string, password: string, deviceName: string): Promise<NewAccount> {
    return this.session.startOver(address, password, deviceName);
  }

  renewRecoveryCode(): Promise<string> {
    return this.session.renewRecoveryCode();
  }

  privacy(): Promise<PrivacySettings> {
    return this.people.privacy();
  }

  serverDomain(): Promise<string> {
    return this.people.domain();
  }

  setPrivacy(settings: PrivacySettings): Promise<PrivacySettings> {
    return this.people.setPrivacy(settings);
  }

  // ================================================================ people

  async createInvite(): Promise<{ url: string; expiresMs: number }> {
    const keys = this.session.need();
    const name = this.contacts.contact(keys.user)?.name || this.session.settings.value.name;
    const { url, expiresMs } = await this.invites.create(name);
    return { url, expiresMs };
  }

  revokeInvite(url: string): Promise<void> {
    return this.invites.revoke(parseInvite(url));
  }

  async checkInvite(url: string): Promise<InviteView> {
    const link = parseInvite(url);
    if (link.server !== location.origin) throw new InviteError(`this invite is for another server: open it at ${link.server}`);
    const invite = await this.invites.check(link);
    return { url, inviter: invite.inviter, name: link.name };
  }

  joinInvite(url: string): Promise<string> {
    return this.invites.join(parseInvite(url));
  }

  presence(user: string): Promise<PresenceView> {
    return this.people.presence(user);
  }

  searchDirectory(query: string): Promise<{ user: string; name: string }[]> {
    return this.people.searchDirectory(query);
  }

  renameContact(user: string, alias: string): Promise<void> {
    return this.contacts.rename(user, alias);
  }

  async loginWithRecoveryCode(address: string, password: string, code: string, deviceName: string): Promise<void> {
    this.wantHistory = true;
    try {
      await this.session.loginWithRecoveryCode(address, password, code, deviceName);
    } catch (e) {
      this.wantHistory = false;
      throw e;
    }
  }

  /** A history from another device of the user was stored: show it. */
  private async reloadProfile(): Promise<void> {
    const keys = this.session.need();
    await this.messages.reload(await this.outbox.queued());
    await this.conversations.load(keys);
    await this.contacts.load();
    await this.conversations.refreshDerived();
    this.bump();
  }

  loginWithLinkCode(address: string, password: string, code: string, deviceName: string): Promise<void> {
    return this.linking.loginWithLinkCode(address, password, code, deviceName);
  }

  linkStart(): Promise<{ code: string; request: Promise<{ device: string; name: string }> }> {
    return this.linking.linkStart();
  }

  linkConfirm(device: string, shareHistory: boolean): Promise<void> {
    return this.linking.linkConfirm(device, shareHistory);
  }

  async logout(): Promise<void> {
    this.connection.close();
    await this.session.logout();
  }

  devices(): Promise<DeviceView[]> {
    return this.session.devices();
  }

  renameDevice(device: string, name: string): Promise<void> {
    return this.session.renameDevice(device, name);
  }

  removeDevice(device: string, password: string): Promise<void> {
    return this.session.removeDevice(device, password);
  }

  /** Set the display name (and picture; `null` keeps the current one) and
   * share them, encrypted, in every conversation. */
  async setProfile(name: string, avatar: Blob | null): Promise<void> {
    await this.contacts.saveProfile(name, avatar);
    this.session.updateSettings({ name });
    for (const conversation of this.conversations.ids()) await this.contacts.sendProfile(conversation);
  }

  updateSettings(change: Partial<Settings>): void {
    this.session.updateSettings(change);
  }

  // ================================================================ conversations

  open(conversation: string | null): void {
    this.openSig.value = conversation;
  }

  /** The chat with `address`: the direct chat (also with someone on another
   * taube server: the servers federate), or, for an address on another
   * domain without a taube account there, the e-mail portal that the
   * user's connector serves. */
  async startChat(address: string): Promise<string> {
    const other = parseAddress(address);
    if (await this.reach.byMail(other, this.session.need().user)) return this.portals.open(emailPortal(other));
    return this.conversations.startChat(other);
  }

  reachedByMail(address: string): Promise<boolean> {
    return this.reach.byMail(parseAddress(address), this.session.need().user);
  }

  createGroup(title: string, members: string[]): Promise<string> {
    return this.conversations.createGroup(title, members);
  }

  addMember(conversation: string, address: string, role: Role = "member"): Promise<void> {
    return this.conversations.addMember(conversation, address, role);
  }

  removeMember(conversation: string, address: string): Promise<void> {
    return this.conversations.removeMember(conversation, address);
  }

  setRole(conversation: string, address: string, role: Role): Promise<void> {
    return this.conversations.setRole(conversation, address, role);
  }

  leave(conversation: string): Promise<void> {
    return this.conversations.leave(conversation);
  }

  rename(conversation: string, title: string): Promise<void> {
    return this.conversations.rename(conversation, title);
  }

  setAvatar(conversation: string, image: Blob): Promise<void> {
    return this.conversations.setAvatar(conversation, image);
  }

  setTimer(conversation: string, seconds: number): Promise<void> {
    return this.conversations.setTimer(conversation, seconds);
  }

  search(text: string): MessageView[] {
    return this.messages.search(text);
  }

  // ================================================================ messages

  sendText(conversation: string, text: string, replyTo?: string): Promise<string> {
    return this.outbox.sendText(conversation, text, replyTo);
  }

  sendFile(
    conversation: string,
    file: Blob,
    name: string,
    caption = "",
    kind?: AttachmentEntry["kind"],
    extra?: { duration_ms?: number },
  ): Promise<string> {
    return this.outbox.sendFile(conversation, file, name, caption, kind, extra);
  }

  react(conversation: string, target: string, emoji: string): Promise<void> {
    return this.outbox.react(conversation, target, emoji);
  }

  edit(conversation: string, target: string, text: string): Promise<void> {
    return this.outbox.edit(conversation, target, text);
  }

  deleteForEveryone(conversation: string, target: string): Promise<void> {
    return this.outbox.deleteForEveryone(conversation, target);
  }

  /** Mark the conversation read, and tell the senders (read receipt). */
  async markRead(conversation: string): Promise<void> {
    const read = await this.messages.markRead(conversation);
    if (read.length) await this.outbox.send(conversation, MESSAGE_TYPE.receipt, { read });
  }

  typing(conversation: string, active: boolean): void {
    this.connection.sendNowait({ type: "typing", conversation, active });
  }

  attachmentUrl(entry: AttachmentEntry): Promise<string> {
    return this.attachments.url(entry);
  }

  // ================================================================ trust

  safetyNumber(user: string): Promise<string> {
    return this.verification.safetyNumber(user);
  }

  verificationQr(user: string): Promise<string> {
    return this.verification.verificationQr(user);
  }

  verifyScanned(user: string, scanned: string): Promise<void> {
    return this.verification.verifyScanned(user, scanned);
  }

  markVerified(user: string): Promise<void> {
    return this.contacts.markVerified(user);
  }

  verifyStart(user: string): Promise<void> {
    return this.verification.verifyStart(user);
  }

  verifyAccept(transaction: string): Promise<void> {
    return this.verification.verifyAccept(transaction);
  }

  verifyConfirm(transaction: string): Promise<void> {
    return this.verification.verifyConfirm(transaction);
  }

  verifyCancel(transaction: string): Promise<void> {
    return this.verification.verifyCancel(transaction);
  }
}

/** One tab at a time owns the profile: two engines on one IndexedDB would
 * both send from the outbox and both encrypt, skipping Megolm indexes. The
 * lock is held until the tab closes. */
async function holdProfileLock(): Promise<void> {
  if (!("locks" in navigator)) return;
  const got = await new Promise<boolean>((resolve) => {
    void navigator.locks.request("taube-profile", { ifAvailable: true }, (lock) => {
      resolve(lock !== null);
      return lock === null ? undefined : new Promise<void>(() => undefined);
    });
  });
  if (!got) throw new ClientError("taube is already open in another tab of this browser: use that one, or close it and reload");
}

export async function createClient(): Promise<Client> {
  return Engine.create();
}
