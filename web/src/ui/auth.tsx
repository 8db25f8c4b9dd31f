// Sign up, log in (recovery code or link from another device), and the
// recovery code shown once after sign-up.
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { ADDRESS_PATTERN } from "../gen/proto";
import { pendingRecovery, signingUp, useClient } from "./context";
import { defaultDeviceName } from "./format";
import { CheckIcon, CopyIcon, LockIcon, LogoMark } from "./icons";
import { FormError } from "./dialog";
import { canScan, QrScanner } from "./qr-scan";

const ADDRESS_RE = new RegExp(ADDRESS_PATTERN, "u");
/** a link code as the other device shows it (36 Crockford base32, in fours) */
const LINK_CODE_RE = /^[0-9A-Z]{4}(-[0-9A-Z]{4}){8}$/u;

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

export function AuthScreen(): JSX.Element {
  const [mode, setMode] = useState<"signup" | "login">("signup");
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
            aria-selected={mode === "login"}
            aria-controls="auth-panel"
            class="tabs__tab"
            data-testid="tab-login"
            onClick={() => setMode("login")}
          >
            Log in
          </button>
        </div>
        <div id="auth-panel" role="tabpanel" aria-labelledby={`tab-${mode}`}>
          {mode === "signup" ? <SignUpForm /> : <LoginForm />}
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
  const [address, setAddress] = useState("");
  const [password, setPassword] = useState("");
  const [deviceName, setDeviceName] = useState(defaultDeviceName());
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [showPassword, setShowPassword] = useState(false);

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
      const account = await client.register(addr, password, deviceName.trim() || defaultDeviceName());
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
      <AddressField value={address} onInput={setAddress} testid="signup-address" />
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

function LoginForm(): JSX.Element {
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
      <label class="field">
        <span class="field__label">Password</span>
        <input
          class="input"
          type="password"
          name="password"
          autocomplete="current-password"
          required
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
          data-testid="login-password"
        />
      </label>
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
    </form>
  );
}

/** The account's address, in both forms. */
function AddressField(props: { value: string; onInput: (value: string) => void; testid: string }): JSX.Element {
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
  const [stored, setStored] = useState(false);
  const [copied, setCopied] = useState(false);
  if (!account) return null;

  async function copy(): Promise<void> {
    if (!account) return;
    try {
      await navigator.clipboard.writeText(account.recoveryCode);
      setCopied(true);
      setTimeout(() => setCopied(false), 2000);
    } catch {
      setCopied(false);
    }
  }

  return (
    <main class="auth">
      <div class="auth__card" data-testid="recovery">
        <div class="auth__brand">
          <LogoMark size={48} />
          <div>
            <h1 class="auth__title auth__title--small">Your recovery code</h1>
            <p class="auth__tagline">{account.user}</p>
          </div>
        </div>
        <p>
          If you lose every device, this code and your password are the only way back into your account and its
          contacts. Nobody else has it, not even the server. Write it down or keep it in a password manager.
        </p>
        <div class="recovery">
          <p class="code code--big code--recovery" data-testid="recovery-code" aria-label="Recovery code">
            {account.recoveryCode}
          </p>
          <button type="button" class="button button--ghost" onClick={copy} data-testid="recovery-copy">
            {copied ? <CheckIcon size={18} /> : <CopyIcon size={18} />}
            <span>{copied ? "Copied" : "Copy"}</span>
          </button>
        </div>
        <p class="muted">It is shown only this once.</p>
        <label class="checkbox">
          <input
            type="checkbox"
            checked={stored}
            onChange={(e) => setStored(e.currentTarget.checked)}
            data-testid="recovery-stored"
          />
          <span>I have stored my recovery code in a safe place</span>
        </label>
        <button
          type="button"
          class="button button--wide"
          disabled={!stored}
          onClick={() => {
            pendingRecovery.value = null;
          }}
          data-testid="recovery-confirm"
        >
          Continue
        </button>
      </div>
    </main>
  );
}
