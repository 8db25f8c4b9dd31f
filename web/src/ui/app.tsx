// The top of the tree: sign-up / log-in until there is a session, then the
// shell with the conversation list, the open chat and a side panel.
import type { JSX } from "preact";
import { useEffect } from "preact/hooks";
import type { Client } from "../client/model";
import { AuthScreen, RecoveryCodeScreen } from "./auth";
import { CallScreen } from "./call";
import { ChatView, EmptyChat } from "./chat";
import { ContactPanel } from "./contact";
import { ClientContext, openConversation, openId, panel, pendingRecovery, signingUp, useClient } from "./context";
import { ConversationPanel } from "./conversation-info";
import { CloseIcon } from "./icons";
import { InviteJoiner, watchInvites } from "./invite";
import { SettingsPanel } from "./settings";
import { Sidebar } from "./sidebar";
import { VerificationDialog } from "./verification";

export function App({ client }: { client: Client }): JSX.Element {
  useEffect(watchInvites, []);
  return (
    <ClientContext.Provider value={client}>
      <Root />
    </ClientContext.Provider>
  );
}

function Root(): JSX.Element {
  const { state } = useClient();
  if (pendingRecovery.value) return <RecoveryCodeScreen />;
  if (!state.session.value || signingUp.value) return <AuthScreen />;
  return <Shell />;
}

/** back in the browser (or the phone's back gesture) closes the chat */
function useHistory(client: Client): void {
  const id = openId.value;
  useEffect(() => {
    const held = (history.state as { chat?: string } | null)?.chat;
    if (id && held !== id) {
      if (held) history.replaceState({ chat: id }, "");
      else history.pushState({ chat: id }, "");
    }
  }, [id]);
  useEffect(() => {
    const onPop = () => {
      const held = (history.state as { chat?: string } | null)?.chat ?? null;
      if (held !== openId.value) openConversation(client, held);
    };
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
}

function Shell(): JSX.Element {
  const client = useClient();
  const { state } = client;
  useHistory(client);
  useUnreadTitle(client);
  const id = openId.value;
  const conversation = id ? state.conversations.value.find((c) => c.id === id) : undefined;
  const side = panel.value;

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== "Escape" || e.defaultPrevented) return;
      if (document.querySelector("dialog[open]")) return;
      if (panel.value) {
        panel.value = null;
        e.preventDefault();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);

  const classes = ["shell", id ? "shell--chat-open" : "", side && side.kind !== "settings" ? "shell--panel-open" : ""]
    .filter(Boolean)
    .join(" ");
  return (
    <div class={classes}>
      <div class="shell__left">
        <Sidebar />
        {side?.kind === "settings" && <SettingsPanel />}
      </div>
      <div class="shell__main">
        {conversation ? (
          <ChatView key={conversation.id} conversation={conversation} />
        ) : id ? (
          <section class="chat chat--empty" aria-busy="true">
            <div class="spinner" aria-label="Opening the chat" />
          </section>
        ) : (
          <EmptyChat />
        )}
      </div>
      {side?.kind === "conversation" && (
        <aside class="shell__panel" aria-label="Chat info">
          <ConversationPanel id={side.id} />
        </aside>
      )}
      {side?.kind === "contact" && (
        <aside class="shell__panel" aria-label="Contact">
          <ContactPanel user={side.user} from={side.from} />
        </aside>
      )}
      <VerificationDialog />
      <CallScreen />
      <InviteJoiner />
      <ErrorToast />
    </div>
  );
}

/** the tab's title counts unread messages: "(3) taube" */
function useUnreadTitle(client: Client): void {
  const unread = client.state.conversations.value.reduce((sum, c) => sum + c.unread, 0);
  useEffect(() => {
    document.title = unread > 0 ? `(${unread > 99 ? "99+" : unread}) taube` : "taube";
  }, [unread]);
}

function ErrorToast(): JSX.Element | null {
  const client = useClient();
  const error = client.state.error.value;
  if (!error) return null;
  return (
    <div class="toast" role="alert" data-testid="error">
      <span>{error}</span>
      <button type="button" class="icon-button icon-button--small" aria-label="Dismiss" onClick={() => client.dismissError()}>
        <CloseIcon size={18} />
      </button>
    </div>
  );
}
