// Sign up, log in (recovery code or link from another device), and the
// recovery code shown once after sign-up.
import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { NewAccount } from "../client/model";
import { CryptoError } from "../crypto/errors";
import { ADDRESS_PATTERN } from "../gen/proto";
import { pendingRecovery, signingUp, useClient } from "./context";
import { defaultDeviceName } from "./format";
import { CheckIcon, CopyIcon, DownloadIcon, LockIcon, LogoMark } from "./icons";
import { FormError } from "./dialog";
import { InviteBanner } from "./invite";
import { canScan, QrScanner } from "./qr-scan";

const ADDRESS_RE = new RegExp(ADDRESS_PATTERN, "u");
/** a link code as the other device shows it (36 Crockford base32, in fours) */
const LINK_CODE_RE = /^[0-9A-Z]{4}(-[0-9A-Z]{4}){8}$/u;

function errorText(err: unknown): string {
  if (err instanceof Error) {
    if (err instanceof CryptoError && err.kind === "wrong_recovery_code") {
      return "That recovery code is not right. Nothing was changed: check it and try again.";
    }
    return err.message;
  }
  return String(err);
}

/** an address from a name: "Ana María" → "ana.maria" */
function localPart(name: string): string {
  return name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/gu, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/gu, ".")
    .replace(/^[._-]+|[._-]+$/gu, "")
    .slice(0, 40);
}

export function AuthScreen(): JSX.Element {
  const [mode, setMode] = useState<"signup" | "login" | "start-over">("signup");
  return (
    <main class="auth">
      <div class="auth__card">
        <div class="auth__brand">
          <LogoMark size={56} />
          <div>
            <h1 class="auth__title">taube</h1>
            <p class="auth__tagline">Private messages, on every device.</p>
          </div>
        </div>
        <div class="tabs" role="tablist" aria-label="Account">
          <button
            type="button"
            role="tab"
            id="tab-signup"
            aria-selected={mode === "signup"}
            aria-controls="auth-panel"
            class="tabs__tab"
            data-testid="tab-signup"
            onClick={() => setMode("signup")}
          >
            Create account
          </button>
          <button
            type="button"
            role="tab"
            id="tab-login"
            aria-selected={mode !== "signup"}
            aria-controls="auth-panel"
            class="tabs__tab"
            data-testid="tab-login"
            onClick={() => setMode("login")}
          >
            Log in
          </button>
        </div>
        <InviteBanner />
        <div id="auth-panel" role="tabpanel" aria-labelledby={`tab-${mode === "signup" ? "signup" : "login"}`}>
          {mode === "signup" ? <SignUpForm /> : mode === "login" ? <LoginForm onStartOver={() => setMode("start-over")} /> : <StartOverForm onBack={() => setMode("login")} />}
        </div>
        <p class="auth__footnote">
          <LockIcon size={16} /> Messages are encrypted on this device. The server never sees them.
        </p>
      </div>
    </main>
  );
}

function normalizeAddress(value: string): string {
  return value.trim().toLowerCase();
}

function SignUpForm(): JSX.Element {
  const client = useClient();
  const [name, setName] = useState("");
  const [picture, setPicture] = useState<File | null>(null);
  const [domain, setDomain] = useState("");
  /** the user typed an address of their own: stop suggesting one */
  const [ownAddress, setOwnAddress] = useState(false);
  const [address, setAddress] = useState("");
  const [password, setPassword] = useState("");
  const [deviceName, setDeviceName] = useState(defaultDeviceName());
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [showPassword, setShowPassword] = useState(false);

  useEffect(() => {
    client.serverDomain().then(setDomain, () => undefined);
  }, []);

  // until the user types an address of their own, suggest one from the name
  useEffect(() => {
    if (ownAddress || !domain) return;
    const local = localPart(name);
    setAddress(local ? `${local}@${domain}` : "");
  }, [name, domain]);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    const addr = normalizeAddress(address);
    if (!ADDRESS_RE.test(addr)) {
      setError("Enter an address like alice@example.org.");
      return;
    }
    if (password.length < 8) {
      setError("Choose a password of at least 8 characters.");
      return;
    }
    setBusy(true);
    setError(null);
    signingUp.value = true;
    try {
      const account = await client.register(addr, password, deviceName.trim() || defaultDeviceName(), name.trim(), picture);
      pendingRecovery.value = account;
    } catch (err) {
      setError(errorText(err));
    } finally {
      signingUp.value = false;
      setBusy(false);
    }
  }

  return (
    <form class="form" onSubmit={submit} data-testid="signup-form" aria-busy={busy}>
      <NameField value={name} onInput={setName} testid="signup-name" />
      <label class="field field--inline">
        <span class="link-button">{picture ? `Picture: ${picture.name}` : "Add a picture (optional)"}</span>
        <input
          type="file"
          accept="image/*"
          class="sr-only"
          onChange={(e) => setPicture(e.currentTarget.files?.[0] ?? null)}
          data-testid="signup-picture"
        />
      </label>
      <AddressField
        value={address}
        onInput={(value) => {
          setOwnAddress(true);
          setAddress(value);
        }}
        testid="signup-address"
        hint={domain ? `Your address on this server: you@${domain}. Others can reach you by it.` : undefined}
      />
      <label class="field">
        <span class="field__label">Password</span>
        <span class="input-with-button">
          <input
            class="input"
            type={(showPassword ? "text" : "password") as "text"}
            name="password"
            autocomplete="new-password"
            minLength={8}
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
            data-testid="signup-password"
          />
          <button
            type="button"
            class="link-button"
            aria-label={showPassword ? "Hide password" : "Show password"}
            onClick={() => setShowPassword(!showPassword)}
          >
            {showPassword ? "Hide" : "Show"}
          </button>
        </span>
        <span class="field__hint">At least 8 characters.</span>
      </label>
      <FormEnd
        prefix="signup"
        deviceName={deviceName}
        setDeviceName={setDeviceName}
        error={error}
        busy={busy}
        label={busy ? "Creating your keys…" : "Create account"}
      />
    </form>
  );
}

function LoginForm({ onStartOver }: { onStartOver: () => void }): JSX.Element {
  const client = useClient();
  const [address, setAddress] = useState("");
  const [password, setPassword] = useState("");
  const [method, setMethod] = useState<"recovery" | "link">("link");
  const [code, setCode] = useState("");
  const [scanning, setScanning] = useState(false);
  const [deviceName, setDeviceName] = useState(defaultDeviceName());
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    const addr = normalizeAddress(address);
    if (!ADDRESS_RE.test(addr)) {
      setError("Enter an address like alice@example.org.");
      return;
    }
    if (!code.trim()) {
      setError(method === "recovery" ? "Enter your recovery code." : "Enter the code shown on your other device.");
      return;
    }
    setBusy(true);
    setError(null);
    const name = deviceName.trim() || defaultDeviceName();
    try {
      if (method === "recovery") await client.loginWithRecoveryCode(addr, password, code.trim(), name);
      else await client.loginWithLinkCode(addr, password, code.trim(), name);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  if (busy && method === "link") {
    return (
      <div class="waiting" data-testid="login-waiting" role="status">
        <div class="spinner" aria-hidden="true" />
        <h2>Confirm on your other device</h2>
        <p>
          On a device where you are logged in, open <strong>Settings → Devices</strong> and confirm that this browser may
          join. The code you typed:
        </p>
        <p class="code code--big" data-testid="login-code-shown">
          {code.trim()}
        </p>
        <p class="muted">Waiting for the other device…</p>
      </div>
    );
  }

  return (
    <form class="form" onSubmit={submit} data-testid="login-form" aria-busy={busy}>
      <AddressField value={address} onInput={setAddress} testid="login-address" />
      <PasswordField value={password} onInput={setPassword} testid="login-password" />
      <fieldset class="segmented">
        <legend class="field__label">How do you want to bring your keys here?</legend>
        <label class="segmented__option">
          <input
            type="radio"
            name="method"
            value="link"
            checked={method === "link"}
            onChange={() => setMethod("link")}
            data-testid="login-method-link"
          />
          <span>Link from another device</span>
        </label>
        <label class="segmented__option">
          <input
            type="radio"
            name="method"
            value="recovery"
            checked={method === "recovery"}
            onChange={() => setMethod("recovery")}
            data-testid="login-method-recovery"
          />
          <span>Recovery code</span>
        </label>
      </fieldset>
      <label class="field">
        <span class="field__label">{method === "recovery" ? "Recovery code" : "Code shown on your other device"}</span>
        <input
          class="input input--mono"
          type="text"
          name="code"
          autocomplete="off"
          autocapitalize="characters"
          spellcheck={false}
          required
          value={code}
          onInput={(e) => setCode(e.currentTarget.value)}
          data-testid="login-code"
        />
        <span class="field__hint">
          {method === "recovery"
            ? "The code you stored when you created the account."
            : "On your other device: Settings → Devices → Link a new device."}
        </span>
      </label>
      {method === "link" && canScan() && (
        <button type="button" class="button button--ghost button--wide" onClick={() => setScanning(true)} data-testid="login-scan">
          Scan the QR code instead
        </button>
      )}
      {scanning && (
        <QrScanner
          accept={(text) => LINK_CODE_RE.test(text.trim())}
          onResult={(text) => {
            setScanning(false);
            setCode(text.trim());
          }}
          onClose={() => setScanning(false)}
        />
      )}
      <FormEnd
        prefix="login"
        deviceName={deviceName}
        setDeviceName={setDeviceName}
        error={error}
        busy={busy}
        label={busy ? "Restoring your keys…" : "Log in"}
      />
      <p class="muted auth__lost">
        Lost every device and the recovery code?{" "}
        <button type="button" class="link-button" onClick={onStartOver} data-testid="start-over">
          Start over with new keys
        </button>
      </p>
    </form>
  );
}

/** Both ways in are lost: the same address with new keys. */
function StartOverForm({ onBack }: { onBack: () => void }): JSX.Element {
  const client = useClient();
  const [address, setAddress] = useState("");
  const [password, setPassword] = useState("");
  const [understood, setUnderstood] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function submit(e: Event): Promise<void> {
    e.preventDefault();
    const addr = normalizeAddress(address);
    if (!ADDRESS_RE.test(addr)) {
      setError("Enter an address like alice@example.org.");
      return;
    }
    setBusy(true);
    setError(null);
    signingUp.value = true;
    try {
      pendingRecovery.value = await client.startOver(addr, password, defaultDeviceName());
    } catch (err) {
      setError(errorText(err));
    } finally {
      signingUp.value = false;
      setBusy(false);
    }
  }

  return (
    <form class="form" onSubmit={submit} data-testid="start-over-form" aria-busy={busy}>
      <h2 class="form__title">Start over with new keys</h2>
      <p>
        Keep your address, with new keys and a new recovery code. Your old messages cannot be read any more, your other
        devices are signed out, and your contacts see that your keys changed.
      </p>
      <AddressField value={address} onInput={setAddress} testid="start-over-address" />
      <PasswordField value={password} onInput={setPassword} testid="start-over-password" />
      <label class="checkbox">
        <input type="checkbox" checked={understood} onChange={(e) => setUnderstood(e.currentTarget.checked)} data-testid="start-over-understood" />
        <span>I understand that my old messages are gone</span>
      </label>
      <FormError error={error} testid="start-over-error" />
      <button type="submit" class="button button--danger button--wide" disabled={busy || !understood} data-testid="start-over-submit">
        {busy ? "Making new keys…" : "Start over"}
      </button>
      <button type="button" class="link-button" onClick={onBack}>
        Back to log in
      </button>
    </form>
  );
}

/** The account's address, in both forms. */
function AddressField(props: { value: string; onInput: (value: string) => void; testid: string; hint?: string | undefined }): JSX.Element {
  return (
    <label class="field">
      <span class="field__label">Address</span>
      <input
        class="input"
        type="email"
        name="address"
        autocomplete="username"
        inputMode="email"
        placeholder="you@example.org"
        required
        value={props.value}
        onInput={(e) => props.onInput(e.currentTarget.value)}
        data-testid={props.testid}
      />
      {props.hint && <span class="field__hint">{props.hint}</span>}
    </label>
  );
}

/** The account's password, when it exists already. */
function PasswordField(props: { value: string; onInput: (value: string) => void; testid: string }): JSX.Element {
  return (
    <label class="field">
      <span class="field__label">Password</span>
      <input
        class="input"
        type="password"
        name="password"
        autocomplete="current-password"
        required
        value={props.value}
        onInput={(e) => props.onInput(e.currentTarget.value)}
        data-testid={props.testid}
      />
    </label>
  );
}

/** The display name (sign-up, settings). */
export function NameField(props: { value: string; onInput: (value: string) => void; testid: string }): JSX.Element {
  return (
    <label class="field">
      <span class="field__label">Your name</span>
      <input
        class="input"
        type="text"
        name="name"
        autocomplete="name"
        maxLength={80}
        placeholder="How others see you"
        value={props.value}
        onInput={(e) => props.onInput(e.currentTarget.value)}
        data-testid={props.testid}
      />
    </label>
  );
}

/** The end of both forms: this device's name, the error, the submit button. */
function FormEnd(props: {
  prefix: "signup" | "login";
  deviceName: string;
  setDeviceName: (name: string) => void;
  error: string | null;
  busy: boolean;
  label: string;
}): JSX.Element {
  const { prefix, error, busy } = props;
  return (
    <>
      <label class="field">
        <span class="field__label">Name of this device</span>
        <input
          class="input"
          type="text"
          name="device"
          value={props.deviceName}
          onInput={(e) => props.setDeviceName(e.currentTarget.value)}
          data-testid={`${prefix}-device`}
        />
      </label>
      <FormError error={error} testid={`${prefix}-error`} />
      <button type="submit" class="button button--wide" disabled={busy} data-testid={`${prefix}-submit`}>
        {props.label}
      </button>
    </>
  );
}

export function RecoveryCodeScreen(): JSX.Element | null {
  const account = pendingRecovery.value;
  if (!account) return null;
  return (
    <main class="auth">
      <div class="auth__card">
        <div class="auth__brand">
          <LogoMark size={48} />
          <div>
            <h1 class="auth__title auth__title--small">Your recovery code</h1>
            <p class="auth__tagline">{account.user}</p>
          </div>
        </div>
        <RecoveryCode account={account} onDone={() => (pendingRecovery.value = null)} />
      </div>
    </main>
  );
}

/** The recovery code, shown once: the user keeps it (download) or shows
 * they wrote it down (types its last group back) before going on. */
export function RecoveryCode({ account, onDone }: { account: NewAccount; onDone: () => void }): JSX.Element {
  const [copied, setCopied] = useState(false);
  const [downloaded, setDownloaded] = useState(false);
  const [typed, setTyped] = useState("");
  const last = account.recoveryCode.split("-").pop() ?? "";
  const typedBack = typed.trim().toUpperCase() === last;

  async function copy(): Promise<void> {
    try {
      await navigator.clipboard.writeText(account.recoveryCode);
      setCopied(true);
      setTimeout(() => setCopied(false), 2000);
    } catch {
      setCopied(false);
    }
  }

  function download(): void {
    const text = [
      "taube recovery code",
      "",
      `Account: ${account.user}`,
      `Recovery code: ${account.recoveryCode}`,
      "",
      "With this code and your password you can get back into your account if you lose every device.",
      "Keep it private: nobody else has it, not even the server.",
      "",
    ].join("\n");
    const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `taube-recovery-${account.user}.txt`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
    setDownloaded(true);
  }

  return (
    <div class="recovery-card" data-testid="recovery">
      <p>
        <strong>What it is for:</strong> if you lose every device, this code and your password are the only way back into
        your account and its contacts. Nobody else has it, not even the server.
      </p>
      <div class="recovery">
        <p class="code code--big code--recovery" data-testid="recovery-code" aria-label="Recovery code">
          {account.recoveryCode}
        </p>
        <div class="recovery__actions">
          <button type="button" class="button" onClick={download} data-testid="recovery-download">
            {downloaded ? <CheckIcon size={18} /> : <DownloadIcon size={18} />}
            <span>{downloaded ? "Downloaded" : "Download"}</span>
          </button>
          <button type="button" class="button button--ghost" onClick={copy} data-testid="recovery-copy">
            {copied ? <CheckIcon size={18} /> : <CopyIcon size={18} />}
            <span>{copied ? "Copied" : "Copy"}</span>
          </button>
        </div>
      </div>
      <p class="muted">It is shown only this once. Download it, or write it down and type its last group here:</p>
      <label class="field">
        <span class="field__label">Last group of the code</span>
        <input
          class="input input--mono"
          type="text"
          autocomplete="off"
          autocapitalize="characters"
          spellcheck={false}
          maxLength={last.length + 2}
          value={typed}
          onInput={(e) => setTyped(e.currentTarget.value)}
          data-testid="recovery-typeback"
        />
      </label>
      <button type="button" class="button button--wide" disabled={!downloaded && !typedBack} onClick={onDone} data-testid="recovery-confirm">
        {downloaded || typedBack ? "Continue" : "Download or type it back to continue"}
      </button>
    </div>
  );
}
