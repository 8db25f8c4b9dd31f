// The client reaches every screen through one context; UI-only state
// (which chat is open, which panel, what is being replied to) lives in
// `ui` signals here, apart from the engine's state.
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { signal } from "@preact/signals";
import type { Client, ConversationId, MessageView, NewAccount, UserId } from "../client/model";

export const ClientContext = createContext<Client | null>(null);

export function useClient(): Client {
  const client = useContext(ClientContext);
  if (client === null) throw new Error("useClient outside <ClientContext.Provider>");
  return client;
}

export type Panel =
  | { kind: "settings" }
  | { kind: "conversation"; id: ConversationId }
  | { kind: "contact"; user: UserId; from?: ConversationId };

/** the open conversation (mirrors what was passed to client.open) */
export const openId = signal<ConversationId | null>(null);
/** the side panel, if any */
export const panel = signal<Panel | null>(null);
/** the message the composer replies to */
export const replyTo = signal<MessageView | null>(null);
/** the message being edited in place */
export const editingId = signal<string | null>(null);
/** a message to scroll to once it is rendered (search result, reply quote) */
export const scrollTarget = signal<string | null>(null);
/** set between register() and the user confirming the recovery code */
export const pendingRecovery = signal<NewAccount | null>(null);
/** true while register() runs, so the shell does not flash before the
 *  recovery code is shown */
export const signingUp = signal(false);
/** an invite link opened in this tab, until it is used (or refused) */
export const pendingInvite = signal<string | null>(null);
/** verification transactions whose final dialog the user closed */
export const dismissedVerification = signal<string | null>(null);

export function openConversation(client: Client, id: ConversationId | null): void {
  if (openId.value === id) return;
  replyTo.value = null;
  editingId.value = null;
  if (panel.value?.kind !== "settings") panel.value = null;
  openId.value = id;
  client.open(id);
}

/** close the open chat; on a phone this is a step back in history */
export function closeChat(client: Client): void {
  if ((history.state as { chat?: string } | null)?.chat) history.back();
  else openConversation(client, null);
}
