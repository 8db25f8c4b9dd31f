// Group info: picture, title, disappearing messages, members with roles
// (add, remove, change role as the own role allows) and leaving.
import type { JSX } from "preact";
import { useRef, useState } from "preact/hooks";
import type { ConversationView, Role, UserId } from "../client/model";
import { ADDRESS_PATTERN } from "../gen/proto";
import { Avatar } from "./avatar";
import { ContactPanel } from "./contact";
import { openConversation, panel, useClient } from "./context";
import { ConfirmDialog, FormError } from "./dialog";
import { displayName, networkLabel, TIMER_OPTIONS } from "./format";
import { EditIcon, ImageIcon, LogoutIcon, PlusIcon, TrashIcon } from "./icons";
import { PanelFrame, Section } from "./panel";

const ADDRESS_RE = new RegExp(ADDRESS_PATTERN, "u");
const ROLE_LABEL: Record<Role, string> = { owner: "Owner", admin: "Admin", member: "Member" };
const ROLE_ORDER: Record<Role, number> = { owner: 0, admin: 1, member: 2 };

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function ConversationPanel({ id }: { id: string }): JSX.Element | null {
  const client = useClient();
  const conversation = client.state.conversations.value.find((c) => c.id === id);
  if (!conversation) return null;
  if (conversation.kind === "direct") {
    const me = client.state.session.value?.user;
    const other = Object.keys(conversation.members).find((m) => m !== me) ?? me ?? "";
    return <ContactPanel user={other} from={id} />;
  }
  return <GroupPanel conversation={conversation} />;
}

/** what the own role allows on a member with `role` */
function allowed(myRole: Role | null, role: Role, self: boolean): { remove: boolean; roles: Role[] } {
  if (self || !myRole) return { remove: false, roles: [] };
  if (myRole === "owner") return { remove: true, roles: ["owner", "admin", "member"] };
  if (myRole === "admin" && role !== "owner") return { remove: role === "member", roles: ["admin", "member"] };
  return { remove: false, roles: [] };
}

export function TimerSelect({ conversation, disabled }: { conversation: ConversationView; disabled?: boolean }): JSX.Element {
  const client = useClient();
  return (
    <label class="field field--row">
      <span class="field__label">Disappearing messages</span>
      <select
        class="select"
        value={String(conversation.timerSeconds)}
        disabled={disabled}
        onChange={(e) => void client.setTimer(conversation.id, Number(e.currentTarget.value))}
        data-testid="timer-select"
      >
        {TIMER_OPTIONS.map(([s, label]) => (
          <option key={s} value={String(s)}>
            {label}
          </option>
        ))}
        {!TIMER_OPTIONS.some(([s]) => s === conversation.timerSeconds) && (
          <option value={String(conversation.timerSeconds)}>{conversation.timerSeconds} s</option>
        )}
      </select>
    </label>
  );
}

function GroupPanel({ conversation: c }: { conversation: ConversationView }): JSX.Element {
  const client = useClient();
  const { state } = client;
  const me = state.session.value?.user ?? "";
  const contacts = state.contacts.value;
  const canManage = c.myRole === "owner" || c.myRole === "admin";
  const [renaming, setRenaming] = useState(false);
  const [title, setTitle] = useState(c.title);
  const [address, setAddress] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [leaving, setLeaving] = useState(false);
  const [removing, setRemoving] = useState<UserId | null>(null);
  const picture = useRef<HTMLInputElement>(null);
  const [viewing, setViewing] = useState<UserId | null>(null);

  if (viewing) return <ContactPanel user={viewing} from={c.id} onBack={() => setViewing(null)} />;

  async function run(action: () => Promise<void>): Promise<boolean> {
    setBusy(true);
    setError(null);
    try {
      await action();
      return true;
    } catch (err) {
      setError(errorText(err));
      return false;
    } finally {
      setBusy(false);
    }
  }

  async function add(e: Event): Promise<void> {
    e.preventDefault();
    const addr = address.trim().toLowerCase();
    if (!ADDRESS_RE.test(addr)) {
      setError("Enter an address like carol@example.org.");
      return;
    }
    if (await run(() => client.addMember(c.id, addr))) setAddress("");
  }

  const members = Object.entries(c.members).sort(
    ([a, ra], [b, rb]) => ROLE_ORDER[ra] - ROLE_ORDER[rb] || displayName(a, contacts).localeCompare(displayName(b, contacts)),
  );

  return (
    <PanelFrame title="Group info" testid="group-info">
      <div class="profile-head">
        <button
          type="button"
          class="profile-head__avatar"
          aria-label={canManage ? "Change group picture" : "Group picture"}
          disabled={!canManage}
          onClick={() => picture.current?.click()}
          data-testid="group-avatar"
        >
          <Avatar seed={c.id} name={c.title} src={c.avatar} size="xl" group />
          {canManage && (
            <span class="profile-head__overlay">
              <ImageIcon size={22} />
            </span>
          )}
        </button>
        <input
          ref={picture}
          type="file"
          accept="image/*"
          class="sr-only"
          tabIndex={-1}
          aria-hidden="true"
          data-testid="group-avatar-input"
          onChange={(e) => {
            const file = e.currentTarget.files?.[0];
            e.currentTarget.value = "";
            if (file) void run(() => client.setAvatar(c.id, file));
          }}
        />
        {renaming ? (
          <form
            class="inline-form"
            onSubmit={(e) => {
              e.preventDefault();
              const t = title.trim();
              if (!t) return;
              void run(() => client.rename(c.id, t)).then((ok) => ok && setRenaming(false));
            }}
          >
            <input
              class="input"
              aria-label="Group name"
              value={title}
              maxLength={100}
              autofocus
              onInput={(e) => setTitle(e.currentTarget.value)}
              onKeyDown={(e) => {
                if (e.key === "Escape") {
                  e.stopPropagation();
                  setRenaming(false);
                }
              }}
              data-testid="group-title-input"
            />
            <button type="submit" class="button button--small" disabled={busy} data-testid="group-rename-save">
              Save
            </button>
          </form>
        ) : (
          <h3 class="profile-head__name" data-testid="group-title">
            {c.title}
            {canManage && (
              <button
                type="button"
                class="icon-button icon-button--small"
                aria-label="Rename group"
                data-testid="group-rename"
                onClick={() => {
                  setTitle(c.title);
                  setRenaming(true);
                }}
              >
                <EditIcon size={16} />
              </button>
            )}
          </h3>
        )}
        <p class="muted">
          Group · {members.length} member{members.length === 1 ? "" : "s"}
        </p>
      </div>
      <FormError error={error} />
      {c.portal && (
        <Section title={`On ${networkLabel(c.portal.network)}`} testid="portal-info">
          <ul class="plain-list">
            {(c.portal.peers.length ? c.portal.peers : [c.portal.chat]).map((p) => (
              <li key={p}>{p}</li>
            ))}
          </ul>
          <p class="muted">
            {c.portal.by
              ? `Your ${networkLabel(c.portal.network)} connector sends and fetches the mail of this chat.`
              : "Waiting for your e-mail connector (set it up with taube mail connect)."}
          </p>
        </Section>
      )}
      <Section>
        <TimerSelect conversation={c} disabled={!canManage} />
      </Section>
      <Section title={`${members.length} members`} testid="group-members">
        {canManage && (
          <form class="inline-form" onSubmit={add}>
            <input
              class="input"
              type="email"
              inputMode="email"
              placeholder="Add by address"
              aria-label="Address of the member to add"
              value={address}
              onInput={(e) => setAddress(e.currentTarget.value)}
              data-testid="add-member-input"
            />
            <button type="submit" class="button button--small" disabled={busy} data-testid="add-member-submit">
              <PlusIcon size={16} /> Add
            </button>
          </form>
        )}
        <ul class="member-list">
          {members.map(([user, role]) => {
            const self = user === me;
            const can = allowed(c.myRole, role, self);
            return (
              <li key={user} class="member" data-testid="member" data-user={user} data-role={role}>
                <button type="button" class="member__who" onClick={() => !self && setViewing(user)} disabled={self}>
                  <Avatar seed={user} name={displayName(user, contacts)} src={contacts[user]?.avatar} size="s" />
                  <span class="member__names">
                    <span class="member__name">{self ? "You" : displayName(user, contacts)}</span>
                    <span class="member__address">{user}</span>
                  </span>
                </button>
                {can.roles.length > 0 ? (
                  <select
                    class="select select--small"
                    aria-label={`Role of ${user}`}
                    value={role}
                    disabled={busy}
                    onChange={(e) => void run(() => client.setRole(c.id, user, e.currentTarget.value as Role))}
                    data-testid="member-role"
                  >
                    {can.roles.map((r) => (
                      <option key={r} value={r}>
                        {ROLE_LABEL[r]}
                      </option>
                    ))}
                  </select>
                ) : (
                  role !== "member" && <span class={`role role--${role}`}>{ROLE_LABEL[role]}</span>
                )}
                {can.remove && (
                  <button
                    type="button"
                    class="icon-button icon-button--small"
                    aria-label={`Remove ${user} from the group`}
                    title="Remove from group"
                    disabled={busy}
                    onClick={() => setRemoving(user)}
                    data-testid="member-remove"
                  >
                    <TrashIcon size={18} />
                  </button>
                )}
              </li>
            );
          })}
        </ul>
      </Section>
      <Section>
        <button type="button" class="button button--danger-ghost button--wide" onClick={() => setLeaving(true)} data-testid="group-leave">
          <LogoutIcon size={18} /> Leave group
        </button>
      </Section>
      {removing && (
        <ConfirmDialog
          title="Remove member?"
          text={`${displayName(removing, contacts)} will no longer receive new messages in ${c.title}.`}
          confirm="Remove"
          danger
          onConfirm={() => void run(() => client.removeMember(c.id, removing))}
          onClose={() => setRemoving(null)}
        />
      )}
      {leaving && (
        <ConfirmDialog
          title="Leave group?"
          text={`You will no longer receive messages in ${c.title}.`}
          confirm="Leave"
          danger
          onConfirm={() =>
            void run(() => client.leave(c.id)).then((ok) => {
              if (ok) {
                panel.value = null;
                openConversation(client, null);
              }
            })
          }
          onClose={() => setLeaving(false)}
        />
      )}
    </PanelFrame>
  );
}
