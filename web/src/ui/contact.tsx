// A contact: name, address, safety number (grouped digits), a QR code to
// scan, "Mark as verified" and emoji verification.
import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { UserId } from "../client/model";
import { Avatar } from "./avatar";
import { TimerSelect } from "./conversation-info";
import { openConversation, useClient } from "./context";
import { displayName, groupDigits } from "./format";
import { ShieldIcon, SmileIcon } from "./icons";
import { PanelFrame, Section } from "./panel";
import { QrCode } from "./qr";
import { canScan, QrScanner } from "./qr-scan";
import { FormError } from "./dialog";

/** Call a contact by a name of one's own, on this device only. */
function RenameContact({ user, alias }: { user: UserId; alias: string }): JSX.Element {
  const client = useClient();
  const [editing, setEditing] = useState(false);
  const [value, setValue] = useState(alias);
  if (!editing) {
    return (
      <button
        type="button"
        class="link-button"
        onClick={() => {
          setValue(alias);
          setEditing(true);
        }}
        data-testid="contact-rename"
      >
        {alias ? "Change the name you gave them" : "Give them a name of your own"}
      </button>
    );
  }
  return (
    <form
      class="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        void client.renameContact(user, value).then(() => setEditing(false));
      }}
    >
      <input class="input" aria-label="Name on this device" maxLength={100} autofocus value={value} onInput={(e) => setValue(e.currentTarget.value)} data-testid="contact-rename-input" />
      <button type="submit" class="button button--small" data-testid="contact-rename-save">
        Save
      </button>
    </form>
  );
}

interface ContactProps {
  user: UserId;
  from?: string | undefined;
  onBack?: () => void;
}

export function ContactPanel({ user, from, onBack }: ContactProps): JSX.Element {
  const client = useClient();
  const { state } = client;
  const contact = state.contacts.value[user];
  const name = displayName(user, state.contacts.value);
  const conversation = from ? state.conversations.value.find((c) => c.id === from) : undefined;
  const direct = conversation?.kind === "direct" ? conversation : undefined;
  const [safety, setSafety] = useState<string | null>(null);
  const [qr, setQr] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [scanning, setScanning] = useState(false);

  useEffect(() => {
    let live = true;
    setSafety(null);
    setQr(null);
    client.safetyNumber(user).then(
      (s) => live && setSafety(s),
      (err: unknown) => live && setError(err instanceof Error ? err.message : String(err)),
    );
    client.verificationQr(user).then(
      (q) => live && setQr(q),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [user]);

  async function act(action: () => Promise<void>): Promise<void> {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <PanelFrame title={direct ? "Chat info" : "Contact"} testid="contact-info" onBack={onBack}>
      <div class="profile-head">
        <Avatar seed={user} name={name} src={contact?.avatar} size="xl" />
        <h3 class="profile-head__name">
          {name}
          {contact?.verified && (
            <span class="verified" title="Verified">
              <ShieldIcon size={18} />
            </span>
          )}
        </h3>
        <p class="muted" data-testid="contact-address">
          {user}
          {contact?.alias && contact.name && contact.alias !== contact.name && ` · calls themselves ${contact.name}`}
        </p>
        <RenameContact user={user} alias={contact?.alias ?? ""} />
        {!direct && (
          <button
            type="button"
            class="button button--small button--ghost"
            onClick={() => void client.startChat(user).then((id) => openConversation(client, id))}
          >
            Send a message
          </button>
        )}
      </div>
      {direct && (
        <Section>
          <TimerSelect conversation={direct} />
        </Section>
      )}
      <Section title="Verify safety number" testid="verification">
        <p class="muted">
          Compare these numbers with {name}, in person or on a call you trust, or scan each other's code. If they match,
          nobody can read your messages in between.
        </p>
        {safety ? (
          <div class="safety-number" data-testid="safety-number" data-value={safety.replace(/\s+/gu, "")} aria-label="Safety number">
            {groupDigits(safety).map((g, i) => (
              <span key={i}>{g}</span>
            ))}
          </div>
        ) : (
          !error && <div class="spinner spinner--small" aria-label="Computing the safety number" />
        )}
        {qr && (
          <div class="qr-box">
            <QrCode text={qr} label={`Verification code for ${name}`} />
          </div>
        )}
        <FormError error={error} />
        <div class="button-row">
          {contact?.verified ? (
            <p class="verified-line" data-testid="verified">
              <ShieldIcon size={18} /> You have verified {name}.
            </p>
          ) : (
            <button
              type="button"
              class="button"
              disabled={busy || !safety}
              onClick={() => void act(() => client.markVerified(user))}
              data-testid="mark-verified"
            >
              <ShieldIcon size={18} /> Mark as verified
            </button>
          )}
          <button
            type="button"
            class="button button--ghost"
            disabled={busy}
            onClick={() => void act(() => client.verifyStart(user))}
            data-testid="verify-emoji"
          >
            <SmileIcon size={18} /> Verify with emoji
          </button>
          {canScan() && !contact?.verified && (
            <button type="button" class="button button--ghost" disabled={busy} onClick={() => setScanning(true)} data-testid="verify-scan">
              Scan their code
            </button>
          )}
        </div>
        {scanning && (
          <QrScanner
            accept={(text) => text.length > 40}
            onResult={(text) => {
              setScanning(false);
              void act(() => client.verifyScanned(user, text));
            }}
            onClose={() => setScanning(false)}
          />
        )}
      </Section>
    </PanelFrame>
  );
}
