// What the screens see of the client: plain data in signals, and the
// actions they may call. The engine (client.ts) owns the signals and is
// the only writer; components read them and call `Actions`.
import type { ReadonlySignal } from "@preact/signals";
import type { ArchivesView } from "./archive";
import type { CallEvent, CallsView } from "./calls";
import type { ConnectorsView } from "./connectors";

export type UserId = string;
export type ConversationId = string;
export type MessageId = string;

/** An attachment as the message carries it (inside the encrypted payload). */
export interface AttachmentEntry {
  blob: string;
  name: string;
  mime: string;
  size: number;
  encrypted_size: number;
  kind: "file" | "image" | "video" | "audio" | "voice" | "pdf" | "thumbnail";
  key: { algorithm?: string; key: string; sha256: string };
  width?: number;
  height?: number;
  duration_ms?: number;
  thumbnail?: AttachmentEntry;
}

export type MessageStatus = "pending" | "sent" | "delivered" | "read" | "received" | "failed";

/** A message as the user sees it: edits, deletes and reactions applied. */
export interface MessageView {
  conversation: ConversationId;
  id: MessageId;
  seq: number | null;
  sender: UserId;
  senderDevice: string;
  ts: number;
  text: string;
  replyTo: MessageId | null;
  edited: boolean;
  deleted: boolean;
  /** emoji → users who reacted with it */
  reactions: Record<string, UserId[]>;
  readBy: UserId[];
  /** members whose device has it (delivery receipts) */
  deliveredTo: UserId[];
  status: MessageStatus;
  expiresMs: number | null;
  attachments: AttachmentEntry[];
  /** written by the user here or on another of their devices (not by
   * someone a connector brought in: see `remote`) */
  mine: boolean;
  /** who wrote it on another network, if the user's connector brought it in */
  remote: Remote | null;
  /** how the user's connector sent it on to another network, if it did */
  relayed: Relayed | null;
  /** a call's outcome ("missed call", "call, 3 min"), if this is one */
  call?: CallEvent | null;
}

/** The author of a message a connector brought in from another network.
 * The message is sent by the connector, a device of the user's own, so it
 * is as trustworthy as the connector's check of that network's sender
 * (`encrypted`: the network's end-to-end encryption vouched for it). */
export interface Remote {
  network: string;
  /** the address on that network */
  sender: string;
  name: string;
  encrypted: boolean;
}

/** A connector sent the user's message on to another network: encrypted
 * end to end there, or not, or not at all (`error`). */
export interface Relayed {
  network: string;
  encrypted: boolean;
  error: string;
  /** who got it without encryption (no key of theirs known), if the connector says */
  plainTo: string[];
}

/** A conversation that reaches a chat on another network. */
export interface Portal {
  /** "email" */
  network: string;
  /** the network's id of the chat: the peer's address, or "group:<id>" */
  chat: string;
  /** the other side's addresses */
  peers: string[];
  title: string;
  /** the connector device serving it; null: none yet (nothing is relayed) */
  by: string | null;
}

/** Lines in the chat that are not messages. */
export type Notice =
  | { kind: "missing"; conversation: ConversationId; sender: UserId; count: number; before: MessageId; ts: number }
  | { kind: "key-changed"; conversation: ConversationId; user: UserId; verified: boolean; reason: string; ts: number }
  | { kind: "undecryptable"; conversation: ConversationId; sender: UserId; id: MessageId; reason: string; ts: number }
  | { kind: "membership"; conversation: ConversationId; text: string; ts: number }
  | { kind: "timer"; conversation: ConversationId; seconds: number; ts: number };

export type Role = "owner" | "admin" | "member";

export interface ConversationView {
  id: ConversationId;
  kind: "direct" | "group";
  /** the group's title, or the other person's name in a direct chat */
  title: string;
  /** object URL of the decrypted avatar, if any */
  avatar: string | null;
  members: Record<UserId, Role>;
  myRole: Role | null;
  unread: number;
  last: MessageView | null;
  lastTs: number;
  timerSeconds: number;
  /** users typing right now */
  typing: UserId[];
  /** what the conversation reaches on another network, if it is a portal */
  portal: Portal | null;
}

export interface Contact {
  user: UserId;
  /** the name from their (end-to-end encrypted) profile */
  name: string;
  /** the name the user gave them on this device, if any (wins over `name`) */
  alias?: string;
  avatar: string | null;
  verified: boolean;
}

/** What the server lets us see of someone's presence (their privacy setting). */
export interface PresenceView {
  visible: boolean;
  online: boolean;
  /** rounded down to 5 minutes; null: never or not shown */
  lastSeenMs: number | null;
}

/** The account's privacy settings (kept and enforced by the server). */
export interface PrivacySettings {
  /** who sees "online" and "last seen": contacts = people with a direct chat */
  presence: "everyone" | "contacts" | "nobody";
  /** others can find this account by `name` (off by default) */
  findable: boolean;
  name: string;
}

/** An invite link as the newcomer sees it before using it. */
export interface InviteView {
  url: string;
  inviter: UserId;
  /** the name the link carries (a hint from the inviter) */
  name: string;
}

export interface DeviceView {
  device: string;
  name: string;
  createdMs: number;
  lastSeenMs: number;
  current: boolean;
}

export interface Transfer {
  /** what the bar is for: a pending message id (upload) or a blob id (download) */
  id: string;
  name: string;
  direction: "up" | "down";
  done: number;
  total: number;
}

export type Connection = "offline" | "connecting" | "online";

export type Verification =
  | { stage: "incoming"; transaction: string; user: UserId; device: string }
  | { stage: "waiting"; transaction: string; user: UserId }
  | { stage: "emoji"; transaction: string; user: UserId; emoji: [string, string][]; decimals: [number, number, number] }
  | { stage: "done"; transaction: string; user: UserId; verified: boolean; reason: string };

export interface Session {
  user: UserId;
  device: string;
  server: string;
}

export interface Settings {
  theme: "system" | "light" | "dark";
  notifications: boolean;
  name: string;
}

export interface State {
  session: ReadonlySignal<Session | null>;
  connection: ReadonlySignal<Connection>;
  conversations: ReadonlySignal<ConversationView[]>;
  /** messages of the open conversation (oldest first) */
  messages: ReadonlySignal<MessageView[]>;
  notices: ReadonlySignal<Notice[]>;
  contacts: ReadonlySignal<Record<UserId, Contact>>;
  transfers: ReadonlySignal<Transfer[]>;
  verification: ReadonlySignal<Verification | null>;
  settings: ReadonlySignal<Settings>;
  /** the last error worth telling the user, cleared by dismissError */
  error: ReadonlySignal<string | null>;
}

export interface NewAccount {
  user: UserId;
  /** shown once; the user must store it */
  recoveryCode: string;
}

export interface Actions {
  // account
  /** `name`, `picture`: the profile shared with contacts (empty / null: none yet) */
  register(address: string, password: string, deviceName: string, name?: string, picture?: Blob | null): Promise<NewAccount>;
  /** every device and the recovery code lost: new keys on the same address */
  startOver(address: string, password: string, deviceName: string): Promise<NewAccount>;
  /** a new recovery code; the old one stops working */
  renewRecoveryCode(): Promise<string>;
  privacy(): Promise<PrivacySettings>;
  /** the domain of the addresses this server hosts (example.org) */
  serverDomain(): Promise<string>;
  setPrivacy(settings: PrivacySettings): Promise<PrivacySettings>;

  // people
  /** an invite link (and QR payload) for one person; the chat with them is verified */
  createInvite(): Promise<{ url: string; expiresMs: number }>;
  revokeInvite(url: string): Promise<void>;
  /** whose the link is, and whether it can still be used (needs no account) */
  checkInvite(url: string): Promise<InviteView>;
  /** use the link: the verified chat with the inviter */
  joinInvite(url: string): Promise<ConversationId>;
  presence(user: UserId): Promise<PresenceView>;
  /** people who chose to be found by name (3 characters at least) */
  searchDirectory(query: string): Promise<{ user: UserId; name: string }[]>;
  /** the name this device shows for `user` (empty: their own) */
  renameContact(user: UserId, alias: string): Promise<void>;
  /** log in on this browser with the recovery code (restores the identity key) */
  loginWithRecoveryCode(address: string, password: string, code: string, deviceName: string): Promise<void>;
  /** log in and wait for an existing device to confirm the link code */
  loginWithLinkCode(address: string, password: string, code: string, deviceName: string): Promise<void>;
  logout(): Promise<void>;
  devices(): Promise<DeviceView[]>;
  renameDevice(device: string, name: string): Promise<void>;
  removeDevice(device: string, password: string): Promise<void>;
  /** a link code (and QR payload) for a new device, and a promise for its request */
  linkStart(): Promise<{ code: string; request: Promise<{ device: string; name: string }> }>;
  linkConfirm(device: string, shareHistory: boolean): Promise<void>;
  setProfile(name: string, avatar: Blob | null): Promise<void>;
  updateSettings(change: Partial<Settings>): void;

  // conversations
  open(conversation: ConversationId | null): void;
  startChat(address: string): Promise<ConversationId>;
  /** an address on another domain without a taube account there: a chat with it goes by e-mail */
  reachedByMail(address: string): Promise<boolean>;
  createGroup(title: string, members: string[]): Promise<ConversationId>;
  addMember(conversation: ConversationId, address: string, role?: Role): Promise<void>;
  removeMember(conversation: ConversationId, address: string): Promise<void>;
  setRole(conversation: ConversationId, address: string, role: Role): Promise<void>;
  leave(conversation: ConversationId): Promise<void>;
  rename(conversation: ConversationId, title: string): Promise<void>;
  setAvatar(conversation: ConversationId, image: Blob): Promise<void>;
  setTimer(conversation: ConversationId, seconds: number): Promise<void>;
  search(text: string): MessageView[];

  // messages
  sendText(conversation: ConversationId, text: string, replyTo?: MessageId): Promise<MessageId>;
  sendFile(conversation: ConversationId, file: Blob, name: string, caption?: string, kind?: AttachmentEntry["kind"], extra?: { duration_ms?: number }): Promise<MessageId>;
  react(conversation: ConversationId, target: MessageId, emoji: string): Promise<void>;
  edit(conversation: ConversationId, target: MessageId, text: string): Promise<void>;
  deleteForEveryone(conversation: ConversationId, target: MessageId): Promise<void>;
  markRead(conversation: ConversationId): Promise<void>;
  typing(conversation: ConversationId, active: boolean): void;
  /** decrypt an attachment (cached); an object URL */
  attachmentUrl(entry: AttachmentEntry): Promise<string>;

  // trust
  safetyNumber(user: UserId): Promise<string>;
  /** the QR payload this device shows for `user` to scan */
  verificationQr(user: UserId): Promise<string>;
  markVerified(user: UserId): Promise<void>;
  /** verify `user` by the QR code their device shows (scanned text) */
  verifyScanned(user: UserId, scanned: string): Promise<void>;
  verifyStart(user: UserId): Promise<void>;
  verifyAccept(transaction: string): Promise<void>;
  verifyConfirm(transaction: string): Promise<void>;
  verifyCancel(transaction: string): Promise<void>;
  dismissError(): void;
}

export interface Client extends Actions {
  state: State;
  /** the user's connector devices (e-mail), found and set up from here */
  readonly connectors: ConnectorsView;
  /** the portable history: export and import */
  readonly archives: ArchivesView;
  /** voice and video calls */
  readonly calls: CallsView;
}
