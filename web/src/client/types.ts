// The contract between the engine's parts: the errors they share and, for
// each pair of parts that needs something of the other, one small interface
// naming exactly that. A part gets these in its constructor, never the whole
// Engine, and no module of client/ imports one that imports it back.
import type { VerifiedDevice } from "../crypto/keys";
import type { StateEvent, ToDevice as ToDeviceFrame } from "../gen/proto";
import type { MessageRow } from "./db";
import type { Keys } from "./keys";
import type { AttachmentEntry, Contact, MessageView } from "./model";
import type { ConversationState } from "./state";

export class ClientError extends Error {}

const ADDRESS = /^[a-z0-9][a-z0-9._-]{0,63}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?(?::[0-9]{1,5})?$/;

export function parseAddress(text: string): string {
  const address = text.trim().toLowerCase();
  if (address.length > 320 || !ADDRESS.test(address)) throw new ClientError("an address looks like name@example.org");
  return address;
}

/** The connection is gone, or the server did not answer in time: try again later. */
export class Disconnected extends Error {}

/** A conversation's state chain, every event verified. */
export interface Chain {
  events: StateEvent[];
  state: ConversationState;
}

/** session → everyone: the signed-in account's keys. */
export interface Account {
  /** null until signed up or logged in */
  readonly keys: Keys | null;
  /** the keys, or ClientError when nobody is signed in */
  need(): Keys;
}

/** outbox → conversations, contacts, receiver: put a message in the outbox. */
export interface Sender {
  /** stored before it resolves; sent as soon as possible */
  send(conversation: string, type: string, content: Record<string, unknown>): Promise<string>;
}

/** outbox → verification: try the outbox again (a user was verified). */
export interface Retry {
  wake(): void;
}

/** conversations → outbox: a conversation's verified chain. */
export interface ChainSource {
  /** the chain, fetched from the server and verified if not known (or `refresh`) */
  chain(conversation: string, refresh?: boolean): Promise<Chain>;
}

/** conversations → history: every chain this device knows. */
export interface ChainArchive {
  all(): Iterable<[string, Chain]>;
}

/** conversations → receiver: what arriving messages and state events change. */
export interface ChainStore extends ChainSource, ChainArchive {
  /** the chain as known here, without asking the server */
  known(conversation: string): Chain | undefined;
  /** keep a chain that grew by a verified event */
  remember(conversation: string, events: StateEvent[], state: ConversationState): Promise<void>;
  /** a member shared the key that seals title and avatar */
  acceptStateKey(conversation: string, content: Record<string, unknown>): Promise<void>;
  /** unseal the title and avatar again (their message may just have come) */
  refreshDerived(conversation: string): Promise<void>;
}

/** messages → outbox: the local rows of what is being sent. */
export interface SentRows {
  /** a new row of ours, next in local order */
  newRow(conversation: string, id: string, type: string, content: Record<string, unknown>, status: MessageRow["status"]): MessageRow;
  findRow(conversation: string, id: string): MessageRow | undefined;
  /** change a row in memory only (the caller writes it) */
  replaceRow(row: MessageRow): void;
  setStatus(conversation: string, id: string, status: MessageRow["status"]): Promise<void>;
}

/** messages → receiver: storing what arrives, batch by batch. */
export interface ReceivedRows {
  findRow(conversation: string, id: string): MessageRow | undefined;
  /** keep a row; inside a batch it is written with the batch */
  storeRow(row: MessageRow): Promise<void>;
  nextOrder(): number;
  beginBatch(): void;
  /** the rows stored since beginBatch, for the caller to write */
  endBatch(): MessageRow[];
}

/** messages → conversations: what the conversation list shows of the messages. */
export interface MessageLog {
  history(conversation: string): MessageView[];
  unread(conversation: string): number;
}

/** messages → history: every row, and local order for imported ones. */
export interface RowArchive {
  rows(): MessageRow[];
  nextOrder(): number;
}

/** contacts → conversations: share our profile in a (new) conversation. */
export interface ProfileSharing {
  sendProfile(conversation: string): Promise<void>;
}

/** contacts → receiver: profiles as they arrive, and names for notices. */
export interface Profiles extends ProfileSharing {
  rememberProfile(user: string, ts: number, content: Record<string, unknown>): Promise<void>;
  contact(user: string): Contact | undefined;
}

/** contacts → verification: show a user as verified (and trust them in the keys). */
export interface Trust {
  markVerified(user: string): Promise<void>;
}

/** history → linking: the history handed to a new device. */
export interface HistoryTransfer {
  exportHistory(): Promise<AttachmentEntry>;
  importHistory(entry: AttachmentEntry): Promise<void>;
}

/** linking → receiver: a to-device frame may be a new device's link request. */
export interface LinkRequests {
  /** true if the frame was a link request (handled or refused) */
  onLinkRequest(frame: ToDeviceFrame, keysChanged: () => Promise<void>): Promise<boolean>;
}

/** verification → receiver: the emoji verification's to-device messages. */
export interface SasInbox {
  onSas(sender: VerifiedDevice, type: string, content: Record<string, unknown>): Promise<void>;
}
