// "New chat" by address and "New group" with a title and members. An
// address on another domain is reached by e-mail: the chat is a portal
// that the user's e-mail connector serves.
import type { JSX } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { ADDRESS_PATTERN } from "../gen/proto";
import { openConversation, useClient } from "./context";
import { Dialog, FormError } from "./dialog";
import { domainOf } from "./format";
import { CloseIcon } from "./icons";

const ADDRESS_RE = new RegExp(ADDRESS_PATTERN, "u");

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** busy and error state of a dialog that makes a conversation, and `open`,
 * which makes it, closes the dialog and opens the conversation */
function useMaker(onClose: () => void) {
  const client = useClient();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  async function open(make: () => Promise<string>): Promise<void> {
    setBusy(true);
    setError(null);
    try {
      const id = await make();
      onClose();
      openConversation(client, id);
    } catch (err) {
      setError(message(err));
      setBusy(false);
    }
  }
  return { client, busy, error, setError, open };
}

/** what the new-chat box finds as the user types: their own chats and
 * contacts (by name or address), then people who chose to be found */
interface Suggestion {
  key: string;
  title: string;
  detail: string;
  /** open this conversation, or start a chat with this address */
  conversation?: string;
  address?: string;
}

function useSuggestions(typed: string): Suggestion[] {
  const client = useClient();
  const { state } = client;
  const me = state.session.value?.user ?? "";
  const conversations = state.conversations.value;
  const contacts = state.contacts.value;
  const [directory, setDirectory] = useState<{ user: string; name: string }[]>([]);
  const q = typed.trim().toLowerCase();
  const own = useMemo(() => {
    if (!q) return [];
    const found: Suggestion[] = [];
    const seen = new Set<string>();
    for (const c of conversations) {
      const others = Object.keys(c.members).filter((m) => m !== me);
      const hit = c.title.toLowerCase().includes(q) || others.some((m) => m.includes(q));
      if (!hit) continue;
      if (c.kind === "direct" && others[0]) seen.add(others[0]);
      found.push({ key: c.id, title: c.title, detail: c.kind === "direct" ? (others[0] ?? "") : `Group · ${others.length + 1} members`, conversation: c.id });
    }
    for (const contact of Object.values(contacts)) {
      if (contact.user === me || seen.has(contact.user)) continue;
      const name = contact.alias || contact.name;
      if (name.toLowerCase().includes(q) || contact.user.includes(q)) {
        found.push({ key: contact.user, title: name || contact.user, detail: contact.user, address: contact.user });
      }
    }
    return found.slice(0, 8);
  }, [q, conversations, contacts]);
  useEffect(() => {
    setDirectory([]);
    if (q.length < 3 || q.includes("@")) return;
    const timer = window.setTimeout(() => {
      client.searchDirectory(q).then(setDirectory, () => undefined);
    }, 400);
    return () => window.clearTimeout(timer);
  }, [q]);
  const known = new Set(own.map((s) => s.address ?? s.detail));
  const strangers = directory
    .filter((p) => p.user !== me && !known.has(p.user))
    .map((p) => ({ key: `dir:${p.user}`, title: p.name, detail: `${p.user} · found by name`, address: p.user }));
  return [...own, ...strangers];
}

/** Whether `address` (on another domain) has a taube account there, asked
 * of the user's own server once typing pauses: "" while unknown. */
function useReach(address: string): "" | "taube" | "email" {
  const client = useClient();
  const [found, setFound] = useState<{ address: string; reach: "taube" | "email" } | null>(null);
  useEffect(() => {
    if (!address) return;
    let current = true;
    const timer = setTimeout(() => {
      client
        .reachedByMail(address)
        .then((byMail) => current && setFound({ address, reach: byMail ? "email" : "taube" }))
        .catch(() => undefined); // the server cannot tell now: the hint keeps looking
    }, 300);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [address, client]);
  return found !== null && found.address === address ? found.reach : "";
}

export function NewChatDialog({ onClose }: { onClose: () => void }): JSX.Element {
  const { client, busy, error, setError, open } = useMaker(onClose);
  const [address, setAddress] = useState("");
  const typed = address.trim().toLowerCase();
  const suggestions = useSuggestions(address);
  const me = client.state.session.value?.user ?? "";
  const elsewhere = ADDRESS_RE.test(typed) && me !== "" && domainOf(typed) !== domainOf(me);
  const reach = useReach(elsewhere ? typed : "");
  const byEmail = elsewhere && reach === "email";

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    const addr = address.trim().toLowerCase();
    if (!ADDRESS_RE.test(addr)) {
      setError("Enter an address like bob@example.org.");
      return;
    }
    await open(() => client.startChat(addr));
  }

  return (
    <Dialog title="New chat" onClose={onClose} testid="new-chat-dialog">
      <form class="form" onSubmit={submit}>
        <label class="field">
          <span class="field__label">Name or address</span>
          <input
            class="input"
            type="text"
            inputMode="email"
            autocomplete="off"
            placeholder="Bob, or bob@example.org"
            autofocus
            value={address}
            onInput={(e) => setAddress(e.currentTarget.value)}
            aria-describedby="new-chat-hint"
            data-testid="new-chat-address"
          />
          <span class="field__hint" id="new-chat-hint" aria-live="polite" data-testid="new-chat-hint" data-network={byEmail ? "email" : "taube"}>
            {!elsewhere
              ? `Someone on this server (…@${domainOf(me) || "example.org"}), or any e-mail address.`
              : reach === "taube"
                ? `On another taube server (…@${domainOf(typed)}): a chat like any other.`
                : reach === "email"
                  ? "✉ Not on this server: the chat goes by e-mail through your connector."
                  : `Looking for …@${domainOf(typed)}…`}
          </span>
        </label>
        {suggestions.length > 0 && (
          <ul class="suggestions" aria-label="Found" data-testid="new-chat-suggestions">
            {suggestions.map((s) => (
              <li key={s.key}>
                <button
                  type="button"
                  class="suggestion"
                  data-testid="new-chat-suggestion"
                  onClick={() => {
                    if (s.conversation) {
                      const id = s.conversation;
                      void open(() => Promise.resolve(id));
                    } else if (s.address) {
                      const addr = s.address;
                      void open(() => client.startChat(addr));
                    }
                  }}
                >
                  <span class="suggestion__title">{s.title}</span>
                  {s.detail !== s.title && <span class="suggestion__detail">{s.detail}</span>}
                </button>
              </li>
            ))}
          </ul>
        )}
        <FormError error={error} />
        <div class="dialog__actions">
          <button type="button" class="button button--ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="button" disabled={busy} data-testid="new-chat-submit">
            {busy ? "Starting…" : byEmail ? "Start e-mail chat" : "Start chat"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** split typed addresses on commas, semicolons and whitespace */
function splitAddresses(text: string): string[] {
  return text
    .split(/[\s,;]+/u)
    .map((a) => a.trim().toLowerCase())
    .filter((a) => a.length > 0);
}

export function NewGroupDialog({ onClose }: { onClose: () => void }): JSX.Element {
  const { client, busy, error, setError, open } = useMaker(onClose);
  const [title, setTitle] = useState("");
  const [members, setMembers] = useState<string[]>([]);
  const [draft, setDraft] = useState("");
  const me = client.state.session.value?.user;

  function addDraft(text: string): string[] {
    const next = [...members];
    for (const a of splitAddresses(text)) if (!next.includes(a) && a !== me) next.push(a);
    setMembers(next);
    setDraft("");
    return next;
  }

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    const all = addDraft(draft);
    const bad = all.filter((a) => !ADDRESS_RE.test(a));
    if (!title.trim()) {
      setError("Give the group a name.");
      return;
    }
    if (bad.length > 0) {
      setError(`Not an address: ${bad.join(", ")}`);
      return;
    }
    await open(() => client.createGroup(title.trim(), all));
  }

  return (
    <Dialog title="New group" onClose={onClose} testid="new-group-dialog">
      <form class="form" onSubmit={submit}>
        <label class="field">
          <span class="field__label">Group name</span>
          <input
            class="input"
            type="text"
            autofocus
            maxLength={100}
            value={title}
            onInput={(e) => setTitle(e.currentTarget.value)}
            data-testid="new-group-title"
          />
        </label>
        <label class="field">
          <span class="field__label">Members</span>
          <input
            class="input"
            type="text"
            inputMode="email"
            autocomplete="off"
            placeholder="bob@example.org, carol@example.org"
            value={draft}
            onInput={(e) => {
              const value = e.currentTarget.value;
              if (/[\s,;]$/u.test(value)) addDraft(value);
              else setDraft(value);
            }}
            onKeyDown={(e) => {
              if (e.key === "Enter" && draft.trim()) {
                e.preventDefault();
                addDraft(draft);
              } else if (e.key === "Backspace" && !draft && members.length > 0) {
                setMembers(members.slice(0, -1));
              }
            }}
            data-testid="new-group-members"
          />
          <span class="field__hint">Separate addresses with commas or spaces. You can add more people later.</span>
        </label>
        {members.length > 0 && (
          <ul class="chips" aria-label="Members to add">
            {members.map((m) => (
              <li key={m} class={`chip${ADDRESS_RE.test(m) ? "" : " chip--bad"}`} data-testid="new-group-member">
                {m}
                <button
                  type="button"
                  class="chip__remove"
                  aria-label={`Remove ${m}`}
                  onClick={() => setMembers(members.filter((x) => x !== m))}
                >
                  <CloseIcon size={14} />
                </button>
              </li>
            ))}
          </ul>
        )}
        <FormError error={error} />
        <div class="dialog__actions">
          <button type="button" class="button button--ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="button" disabled={busy} data-testid="new-group-submit">
            {busy ? "Creating…" : "Create group"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
