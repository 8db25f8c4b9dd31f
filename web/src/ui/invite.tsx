// Invite links in the app: "Invite someone" (a link and its QR code), the
// banner a newcomer sees on the sign-up screen, and joining once signed in
// (a link opened by someone who has an account opens the chat at once).
import { effect } from "@preact/signals";
import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { InviteView } from "../client/model";
import { openConversation, pendingInvite, pendingRecovery, useClient } from "./context";
import { Dialog } from "./dialog";
import { CheckIcon, CopyIcon, ShieldIcon } from "./icons";
import { QrCode } from "./qr";

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** the invite link in the address bar, if any (then taken out of it) */
export function inviteFromLocation(): string | null {
  if (!location.hash.startsWith("#/invite/")) return null;
  const url = location.href;
  history.replaceState(history.state, "", location.pathname + location.search);
  return url;
}

/** where a pending invite survives a reload of the tab (during sign-up) */
const KEPT = "taube-invite";

/** Watch for invite links opened in this tab (also while it is open). */
export function watchInvites(): () => void {
  pendingInvite.value = inviteFromLocation() ?? sessionStorage.getItem(KEPT) ?? pendingInvite.value;
  const onHash = () => {
    const url = inviteFromLocation();
    if (url) pendingInvite.value = url;
  };
  window.addEventListener("hashchange", onHash);
  const stopKeeping = effect(() => {
    const url = pendingInvite.value;
    if (url) sessionStorage.setItem(KEPT, url);
    else sessionStorage.removeItem(KEPT);
  });
  return () => {
    window.removeEventListener("hashchange", onHash);
    stopKeeping();
  };
}

function capitalised(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** On the sign-up screen: who invited the newcomer, or why the link cannot be used. */
export function InviteBanner(): JSX.Element | null {
  const client = useClient();
  const url = pendingInvite.value;
  const [invite, setInvite] = useState<InviteView | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setInvite(null);
    setError(null);
    if (!url) return;
    client.checkInvite(url).then(setInvite, (err: unknown) => setError(errorText(err)));
  }, [url]);
  if (!url) return null;
  if (error) {
    return (
      <div class="invite-banner invite-banner--error" role="alert" data-testid="invite-error">
        <p>
          <strong>{capitalised(error)}.</strong>
        </p>
        <p>Ask the person who sent it for a new link. You can still create an account.</p>
        <button type="button" class="link-button" onClick={() => (pendingInvite.value = null)} data-testid="invite-dismiss">
          Dismiss
        </button>
      </div>
    );
  }
  if (!invite) return <div class="invite-banner" aria-busy="true" />;
  return (
    <div class="invite-banner" role="status" data-testid="invite-banner">
      <ShieldIcon size={20} />
      <p>
        <strong>{invite.name || invite.inviter}</strong>
        {invite.name && <span class="muted"> ({invite.inviter})</span>} invited you. Create your account and your chat with
        them opens, already verified.
      </p>
    </div>
  );
}

/** Signed in with an invite link waiting: use it and open the chat. */
export function InviteJoiner(): JSX.Element | null {
  const client = useClient();
  const url = pendingInvite.value;
  const waiting = pendingRecovery.value !== null;
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!url || waiting) return;
    pendingInvite.value = null;
    client.joinInvite(url).then(
      (id) => openConversation(client, id),
      (err: unknown) => setError(errorText(err)),
    );
  }, [url, waiting]);
  if (!error) return null;
  return (
    <Dialog title="This invite cannot be used" onClose={() => setError(null)} testid="invite-refused">
      <p class="dialog__text" role="alert" data-testid="invite-refused-reason">
        {capitalised(error)}.
      </p>
      <p class="muted">Ask the person who sent it for a new link, or start a chat by their address.</p>
      <div class="dialog__actions">
        <button type="button" class="button" onClick={() => setError(null)}>
          OK
        </button>
      </div>
    </Dialog>
  );
}

/** "Invite someone": a link and its QR code for one person. */
export function InviteDialog({ onClose }: { onClose: () => void }): JSX.Element {
  const client = useClient();
  const [link, setLink] = useState<{ url: string; expiresMs: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const [revoked, setRevoked] = useState(false);
  useEffect(() => {
    client.createInvite().then(setLink, (err: unknown) => setError(errorText(err)));
  }, []);

  async function copy(): Promise<void> {
    if (!link) return;
    try {
      await navigator.clipboard.writeText(link.url);
      setCopied(true);
      setTimeout(() => setCopied(false), 2000);
    } catch {
      setCopied(false);
    }
  }

  async function revoke(): Promise<void> {
    if (!link) return;
    try {
      await client.revokeInvite(link.url);
      setRevoked(true);
    } catch (err) {
      setError(errorText(err));
    }
  }

  const days = link ? Math.round((link.expiresMs - Date.now()) / 86_400_000) : 0;
  return (
    <Dialog title="Invite someone" onClose={onClose} testid="invite-dialog">
      {!link && !error && <div class="spinner" aria-label="Making a link" />}
      {error && (
        <p class="form__error" role="alert">
          {error}
        </p>
      )}
      {link && (
        <div class="link">
          <p class="dialog__text">
            Send this link to one person, or let them scan the code. It walks them through signing up and opens a chat
            with you that is verified on both sides.
          </p>
          <div class="invite-link">
            <input class="input input--mono" readOnly value={link.url} aria-label="Invite link" data-testid="invite-link" onFocus={(e) => e.currentTarget.select()} />
            <button type="button" class="button button--ghost" onClick={() => void copy()} data-testid="invite-copy">
              {copied ? <CheckIcon size={18} /> : <CopyIcon size={18} />}
              <span>{copied ? "Copied" : "Copy"}</span>
            </button>
          </div>
          <div class="qr-box">
            <QrCode text={link.url} label="Invite link as a QR code" />
          </div>
          <p class="muted" data-testid="invite-status">
            {revoked ? "Revoked: the link no longer works." : `Works once, for ${days} days.`}
          </p>
          <div class="dialog__actions">
            {!revoked && (
              <button type="button" class="button button--danger-ghost" onClick={() => void revoke()} data-testid="invite-revoke">
                Revoke
              </button>
            )}
            <button type="button" class="button" onClick={onClose} data-testid="invite-done">
              Done
            </button>
          </div>
        </div>
      )}
    </Dialog>
  );
}
