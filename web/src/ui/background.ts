// What runs beside the screens: the theme attribute on <html>, the unread
// count in the tab title, and notifications for new messages.
import { effect } from "@preact/signals";
import type { Client, ConversationView } from "../client/model";
import { openConversation, openId } from "./context";
import { authorName, messagePreview } from "./format";

export function watchTheme(client: Client): () => void {
  return effect(() => {
    document.documentElement.dataset.theme = client.state.settings.value.theme;
  });
}

function notify(client: Client, c: ConversationView): void {
  const last = c.last;
  const contacts = client.state.contacts.value;
  let body = last ? messagePreview(last) : "New message";
  if (last && c.kind === "group") body = `${authorName(last, contacts)}: ${body}`;
  try {
    const n = new Notification(c.title, { body, tag: c.id, icon: "/icon-192.png", badge: "/icon-192.png" });
    n.onclick = () => {
      window.focus();
      openConversation(client, c.id);
      n.close();
    };
  } catch {
    // some platforms only allow notifications from a service worker
  }
}

/** fire a notification when a chat that is not in view gets new messages */
export function watchNotifications(client: Client): () => void {
  const seen = new Map<string, number>();
  let primed = false;
  return effect(() => {
    const conversations = client.state.conversations.value;
    const enabled = client.state.settings.value.notifications;
    const open = openId.value;
    let total = 0;
    for (const c of conversations) {
      total += c.unread;
      const before = seen.get(c.id) ?? (primed ? 0 : c.unread);
      seen.set(c.id, c.unread);
      const hidden = document.visibilityState !== "visible";
      if (
        c.unread > before &&
        enabled &&
        typeof Notification !== "undefined" &&
        Notification.permission === "granted" &&
        (hidden || open !== c.id) &&
        c.last &&
        !c.last.mine
      ) {
        notify(client, c);
      }
    }
    primed = true;
    document.title = total > 0 ? `(${total}) taube` : "taube";
  });
}
