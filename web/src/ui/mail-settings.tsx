// Settings → E-mail: the mail account of the user's connector device.
//
// The browser does not run IMAP and keeps no mail password: a device of the
// user's runs the connector (`taube mail run`). This screen finds it (it
// answers a query sent to the user's own devices), hands it the account in
// an end-to-end encrypted to-device message, and shows what it says: checking,
// connected, login refused, reconnecting. Nothing here goes to the server in
// the clear.
import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { ConnectorState, ConnectorStatus, MailSettings } from "../client/connectors";
import type { DeviceView } from "../client/model";
import { useClient } from "./context";
import { ConfirmDialog, FormError } from "./dialog";
import { DeviceIcon, LockIcon } from "./icons";
import { Section } from "./panel";

/** how long the screen waits for a connector to answer before it explains */
const LOOKING_MS = 6000;
/** how long a request may go unanswered (the connector logs in: up to a minute) */
const ANSWER_MS = 90_000;

const STATE_TEXT: Record<ConnectorState, string> = {
  unconfigured: "Not set up",
  checking: "Checking…",
  connected: "Connected",
  auth_failed: "Login refused",
  reconnecting: "Reconnecting",
  failed: "Failed",
};

export function MailSection(): JSX.Element {
  const client = useClient();
  const connectors = client.connectors;
  const statuses = Object.values(connectors.statuses.value).filter((s) => s.network === "email");
  const [looking, setLooking] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [names, setNames] = useState<Record<string, string>>({});

  async function look(): Promise<void> {
    setLooking(true);
    setError(null);
    try {
      await connectors.query();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
    window.setTimeout(() => setLooking(false), LOOKING_MS);
  }

  useEffect(() => {
    void look();
    void client
      .devices()
      .then((devices: DeviceView[]) => setNames(Object.fromEntries(devices.map((d) => [d.device, d.name]))))
      .catch(() => undefined);
  }, []);

  return (
    <Section title="E-mail" testid="mail-settings">
      <p class="muted">
        Chat with anyone who has an e-mail address. A device of yours that stays on relays the mail; its mail password stays on that device and
        reaches it end-to-end encrypted.
      </p>
      <FormError error={error} />
      {statuses.map((status) => (
        <ConnectorCard key={status.device} status={status} name={names[status.device] || status.device} />
      ))}
      {statuses.length === 0 &&
        (looking ? (
          <p class="muted" role="status" data-testid="mail-looking">
            <span class="spinner spinner--small" aria-hidden="true" /> Looking for your connector device…
          </p>
        ) : (
          <div class="mail-none" data-testid="mail-none">
            <p>No device of yours relays e-mail yet.</p>
            <p class="muted">
              On a computer that stays on, log in to this account with the taube command line and run <code>taube mail run</code>. It appears
              here; then set up the mail account.
            </p>
            <button type="button" class="button button--ghost button--wide" onClick={() => void look()} data-testid="mail-look-again">
              Look again
            </button>
          </div>
        ))}
    </Section>
  );
}

function ConnectorCard({ status, name }: { status: ConnectorStatus; name: string }): JSX.Element {
  const client = useClient();
  const [editing, setEditing] = useState(false);
  const [disconnecting, setDisconnecting] = useState(false);
  const configured = status.address !== "";
  const problem = status.state === "auth_failed" || status.state === "reconnecting" || status.state === "failed";
  return (
    <div class="mail-connector" data-testid="mail-connector" data-device={status.device} data-state={status.state}>
      <div class="mail-connector__head">
        <DeviceIcon />
        <span class="mail-connector__info">
          <span class="mail-connector__name">{name}</span>
          <span class="mail-connector__address" data-testid="mail-connector-address">
            {configured ? status.address : "no mail account yet"}
          </span>
        </span>
        <span class={`mail-state mail-state--${status.state}`} data-testid="mail-state">
          {STATE_TEXT[status.state]}
        </span>
      </div>
      {problem && status.error && (
        <p class="field__hint" data-testid="mail-state-error">
          {status.error}
        </p>
      )}
      {status.fingerprint && (
        <p class="field__hint mail-connector__key">
          <LockIcon size={14} />
          <span>
            OpenPGP key <code>{status.fingerprint}</code>
          </span>
        </p>
      )}
      {editing || !configured ? (
        <MailAccountForm
          device={status.device}
          address={status.address}
          onDone={() => setEditing(false)}
          onCancel={configured ? () => setEditing(false) : undefined}
        />
      ) : (
        <div class="mail-connector__actions">
          <button type="button" class="button button--ghost button--small" onClick={() => setEditing(true)} data-testid="mail-change">
            Change account
          </button>
          <button type="button" class="button button--danger-ghost button--small" onClick={() => setDisconnecting(true)} data-testid="mail-disconnect">
            Disconnect
          </button>
        </div>
      )}
      {disconnecting && (
        <ConfirmDialog
          title={`Disconnect ${status.address}?`}
          text="The device stops relaying mail and forgets the password. Your chats stay; set the account up again to go on."
          confirm="Disconnect"
          danger
          onConfirm={() => void client.connectors.disconnect(status.device)}
          onClose={() => setDisconnecting(false)}
        />
      )}
    </div>
  );
}

type Security = "ssl" | "starttls" | "plain";

function MailAccountForm({ device, address, onDone, onCancel }: { device: string; address: string; onDone: () => void; onCancel?: () => void }): JSX.Element {
  const client = useClient();
  const connectors = client.connectors;
  const [form, setForm] = useState({
    address,
    password: "",
    name: "",
    user: "",
    imapHost: "",
    imapPort: "",
    imapSecurity: "ssl" as Security,
    smtpHost: "",
    smtpPort: "",
    smtpSecurity: "ssl" as Security,
  });
  const [request, setRequest] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const answer = request ? connectors.answers.value[request] : undefined;
  const checking = request !== null && (answer === undefined || answer.outcome === "checking");

  useEffect(() => {
    if (request === null) return;
    const timer = window.setTimeout(() => {
      setRequest(null);
      setError("The connector device did not answer. Is `taube mail run` running there, and online?");
    }, ANSWER_MS);
    return () => window.clearTimeout(timer);
  }, [request]);

  useEffect(() => {
    if (!answer || answer.outcome === "checking") return;
    setRequest(null);
    if (answer.outcome === "connected") onDone();
    else if (answer.outcome === "auth_failed") setError(`The mail server refused the login: check the address and password. (${answer.reason})`);
    else setError(answer.reason || "The account could not be used.");
  }, [answer?.outcome]);

  const set = (field: keyof typeof form) => (e: { currentTarget: HTMLInputElement | HTMLSelectElement }) =>
    setForm({ ...form, [field]: e.currentTarget.value });

  async function submit(): Promise<void> {
    setError(null);
    const settings: MailSettings = { address: form.address.trim(), password: form.password };
    if (form.name.trim()) settings.display_name = form.name.trim();
    if (form.user.trim()) settings.user = form.user.trim();
    if (form.imapHost.trim() || form.smtpHost.trim()) {
      if (!form.imapHost.trim() || !form.smtpHost.trim()) {
        setError("Give both the IMAP and the SMTP server, or neither (then they are looked up).");
        return;
      }
      Object.assign(settings, {
        imap_host: form.imapHost.trim(),
        imap_port: Number(form.imapPort) || 0,
        imap_security: form.imapSecurity,
        smtp_host: form.smtpHost.trim(),
        smtp_port: Number(form.smtpPort) || 0,
        smtp_security: form.smtpSecurity,
      });
    }
    try {
      setRequest(await connectors.configure(device, settings));
      setForm({ ...form, password: "" });
    } catch (err) {
      setRequest(null);
      setError(err instanceof Error ? err.message : String(err));
    }
  }

  return (
    <form
      class="form mail-form"
      data-testid="mail-form"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <label class="field">
        <span class="field__label">E-mail address</span>
        <input class="input" type="email" required autoComplete="off" value={form.address} onInput={set("address")} data-testid="mail-address" />
      </label>
      <label class="field">
        <span class="field__label">Password of the mail account</span>
        <input class="input" type="password" required autoComplete="off" value={form.password} onInput={set("password")} data-testid="mail-password" />
      </label>
      <label class="field">
        <span class="field__label">Name shown in e-mails (optional)</span>
        <input class="input" type="text" maxLength={80} value={form.name} onInput={set("name")} data-testid="mail-name" />
      </label>
      <details class="mail-servers" data-testid="mail-servers">
        <summary>Server settings (when they are not found by themselves)</summary>
        <ServerFields label="Incoming (IMAP)" kind="imap" host={form.imapHost} port={form.imapPort} security={form.imapSecurity} set={set} />
        <ServerFields label="Outgoing (SMTP)" kind="smtp" host={form.smtpHost} port={form.smtpPort} security={form.smtpSecurity} set={set} />
        <label class="field">
          <span class="field__label">Login name (if not the address)</span>
          <input class="input" type="text" autoComplete="off" value={form.user} onInput={set("user")} data-testid="mail-user" />
        </label>
      </details>
      <FormError error={error} testid="mail-error" />
      <div class="mail-connector__actions">
        {onCancel && (
          <button type="button" class="button button--ghost" onClick={onCancel} data-testid="mail-cancel">
            Cancel
          </button>
        )}
        <button type="submit" class="button" disabled={checking} data-testid="mail-connect">
          {checking ? "Checking the login…" : "Connect"}
        </button>
      </div>
    </form>
  );
}

interface ServerFieldsProps {
  label: string;
  kind: "imap" | "smtp";
  host: string;
  port: string;
  security: Security;
  set: (field: "imapHost" | "imapPort" | "imapSecurity" | "smtpHost" | "smtpPort" | "smtpSecurity") => (e: { currentTarget: HTMLInputElement | HTMLSelectElement }) => void;
}

function ServerFields({ label, kind, host, port, security, set }: ServerFieldsProps): JSX.Element {
  return (
    <fieldset class="mail-server">
      <legend class="field__label">{label}</legend>
      <input class="input" type="text" placeholder="Server" aria-label={`${label} server`} value={host} onInput={set(`${kind}Host`)} data-testid={`mail-${kind}-host`} />
      <input
        class="input mail-server__port"
        type="number"
        min={1}
        max={65535}
        placeholder="Port"
        aria-label={`${label} port`}
        value={port}
        onInput={set(`${kind}Port`)}
        data-testid={`mail-${kind}-port`}
      />
      <select class="select" aria-label={`${label} security`} value={security} onChange={set(`${kind}Security`)} data-testid={`mail-${kind}-security`}>
        <option value="ssl">TLS</option>
        <option value="starttls">STARTTLS</option>
        <option value="plain">None (this machine only)</option>
      </select>
    </fieldset>
  );
}
