// Settings: profile, theme, notifications, devices (rename, remove, link
// a new one) and logging out.
import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { DeviceView, NewAccount, PrivacySettings, Settings } from "../client/model";
import { NameField, RecoveryCode } from "./auth";
import { Avatar } from "./avatar";
import { panel, useClient } from "./context";
import { ConfirmDialog, Dialog, FormError } from "./dialog";
import { formatListTime } from "./format";
import { DeviceIcon, EditIcon, ImageIcon, LogoutIcon, PlusIcon, TrashIcon } from "./icons";
import { ArchiveSection } from "./archive-settings";
import { MailSection } from "./mail-settings";
import { PanelFrame, Section } from "./panel";
import { QrCode } from "./qr";

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function SettingsPanel(): JSX.Element {
  const client = useClient();
  const [loggingOut, setLoggingOut] = useState(false);
  const session = client.state.session.value;
  return (
    <div class="settings-overlay">
      <PanelFrame title="Settings" testid="settings" onBack={() => (panel.value = null)}>
        <ProfileSection />
        <AppearanceSection />
        <NotificationSection />
        <PrivacySection />
        <DevicesSection />
        <MailSection />
        <ArchiveSection />
        <RecoverySection />
        <Section title="Account">
          <p class="muted">
            Logged in as <strong>{session?.user}</strong>
          </p>
          <button type="button" class="button button--danger-ghost button--wide" onClick={() => setLoggingOut(true)} data-testid="logout">
            <LogoutIcon size={18} /> Log out
          </button>
        </Section>
        <p class="settings__about muted">taube · end-to-end encrypted messaging</p>
      </PanelFrame>
      {loggingOut && (
        <ConfirmDialog
          title="Log out?"
          text="This browser forgets your keys and messages. To read them here again, link it from another device or use your recovery code."
          confirm="Log out"
          danger
          onConfirm={() => void client.logout().then(() => (panel.value = null))}
          onClose={() => setLoggingOut(false)}
        />
      )}
    </div>
  );
}

function ProfileSection(): JSX.Element {
  const client = useClient();
  const { state } = client;
  const session = state.session.value;
  const me = session ? state.contacts.value[session.user] : undefined;
  const saved = state.settings.value.name || me?.name || "";
  const [name, setName] = useState(saved);
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState<string | null>(null);
  const picker = useRef<HTMLInputElement>(null);

  async function save(avatar: Blob | null): Promise<void> {
    setBusy(true);
    setNote(null);
    try {
      await client.setProfile(name.trim(), avatar);
      setNote("Saved. Your contacts will see it.");
    } catch (err) {
      setNote(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Section title="Profile" testid="settings-profile">
      <div class="profile-edit">
        <button
          type="button"
          class="profile-head__avatar"
          aria-label="Change profile picture"
          onClick={() => picker.current?.click()}
          data-testid="settings-avatar"
        >
          <Avatar seed={session?.user ?? "?"} name={name || session?.user || "?"} src={me?.avatar} size="l" />
          <span class="profile-head__overlay">
            <ImageIcon size={20} />
          </span>
        </button>
        <input
          ref={picker}
          type="file"
          accept="image/*"
          class="sr-only"
          tabIndex={-1}
          aria-hidden="true"
          data-testid="settings-avatar-input"
          onChange={(e) => {
            const file = e.currentTarget.files?.[0];
            e.currentTarget.value = "";
            if (file) void save(file);
          }}
        />
        <form
          class="inline-form inline-form--grow"
          onSubmit={(e) => {
            e.preventDefault();
            void save(null);
          }}
        >
          <NameField value={name} onInput={setName} testid="settings-name" />
          <button type="submit" class="button button--small" disabled={busy || name.trim() === saved} data-testid="settings-name-save">
            Save
          </button>
        </form>
      </div>
      {note && (
        <p class="muted" role="status">
          {note}
        </p>
      )}
    </Section>
  );
}

function AppearanceSection(): JSX.Element {
  const client = useClient();
  const theme = client.state.settings.value.theme;
  const options: [Settings["theme"], string][] = [
    ["system", "System"],
    ["light", "Light"],
    ["dark", "Dark"],
  ];
  return (
    <Section title="Appearance">
      <fieldset class="segmented segmented--row">
        <legend class="sr-only">Theme</legend>
        {options.map(([value, label]) => (
          <label key={value} class="segmented__option">
            <input
              type="radio"
              name="theme"
              value={value}
              checked={theme === value}
              onChange={() => client.updateSettings({ theme: value })}
              data-testid={`theme-${value}`}
            />
            <span>{label}</span>
          </label>
        ))}
      </fieldset>
    </Section>
  );
}

function NotificationSection(): JSX.Element {
  const client = useClient();
  const enabled = client.state.settings.value.notifications;
  const supported = typeof Notification !== "undefined";
  const [permission, setPermission] = useState(supported ? Notification.permission : "denied");

  async function toggle(on: boolean): Promise<void> {
    if (!on) {
      client.updateSettings({ notifications: false });
      return;
    }
    if (!supported) return;
    const result = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    setPermission(result);
    client.updateSettings({ notifications: result === "granted" });
  }

  return (
    <Section title="Notifications">
      <label class="switch">
        <input
          type="checkbox"
          role="switch"
          checked={enabled && permission === "granted"}
          disabled={!supported}
          onChange={(e) => void toggle(e.currentTarget.checked)}
          data-testid="settings-notifications"
        />
        <span class="switch__track" aria-hidden="true" />
        <span>Show a notification for new messages</span>
      </label>
      <p class="muted">
        {!supported
          ? "This browser cannot show notifications."
          : permission === "denied"
            ? "Notifications are blocked for this site in the browser's settings."
            : "Shown for chats you are not looking at, while this tab is open."}
      </p>
    </Section>
  );
}

const PRESENCE_OPTIONS: [PrivacySettings["presence"], string][] = [
  ["everyone", "Everyone"],
  ["contacts", "My contacts"],
  ["nobody", "Nobody"],
];

/** Who sees "online" and "last seen", and whether strangers can find the
 * account by name: kept and enforced by the server. */
function PrivacySection(): JSX.Element {
  const client = useClient();
  const [privacy, setPrivacy] = useState<PrivacySettings | null>(null);
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const me = client.state.session.value?.user ?? "";
  const profileName = client.state.contacts.value[me]?.name || client.state.settings.value.name;

  useEffect(() => {
    client.privacy().then(
      (p) => {
        setPrivacy(p);
        setName(p.name || profileName);
      },
      (err: unknown) => setError(errorText(err)),
    );
  }, []);

  async function change(next: PrivacySettings): Promise<void> {
    setError(null);
    try {
      setPrivacy(await client.setPrivacy(next));
    } catch (err) {
      setError(errorText(err));
    }
  }

  return (
    <Section title="Privacy" testid="settings-privacy">
      <fieldset class="segmented segmented--row">
        <legend class="field__label">Who sees when I'm online or was last seen</legend>
        {PRESENCE_OPTIONS.map(([value, label]) => (
          <label key={value} class="segmented__option">
            <input
              type="radio"
              name="presence"
              value={value}
              checked={privacy?.presence === value}
              disabled={!privacy}
              onChange={() => privacy && void change({ ...privacy, presence: value })}
              data-testid={`presence-${value}`}
            />
            <span>{label}</span>
          </label>
        ))}
      </fieldset>
      <p class="muted">Contacts are the people you have a chat of your own with. Last seen is shown to the nearest 5 minutes.</p>
      <label class="switch">
        <input
          type="checkbox"
          role="switch"
          checked={privacy?.findable ?? false}
          disabled={!privacy}
          onChange={(e) => privacy && void change({ ...privacy, findable: e.currentTarget.checked, name: name.trim() || me.split("@")[0] || "" })}
          data-testid="settings-findable"
        />
        <span class="switch__track" aria-hidden="true" />
        <span>Others on this server can find me by name</span>
      </label>
      {privacy?.findable && (
        <form
          class="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            void change({ ...privacy, name: name.trim() });
          }}
        >
          <input class="input" aria-label="Name to be found by" value={name} maxLength={100} onInput={(e) => setName(e.currentTarget.value)} data-testid="settings-findable-name" />
          <button type="submit" class="button button--small" disabled={!name.trim() || name.trim() === privacy.name}>
            Save
          </button>
        </form>
      )}
      <p class="muted">Off by default. When on, the server keeps this name in its directory, readable by everyone on it.</p>
      <FormError error={error} />
    </Section>
  );
}

/** A new recovery code; the old one stops working. */
function RecoverySection(): JSX.Element {
  const client = useClient();
  const [asking, setAsking] = useState(false);
  const [fresh, setFresh] = useState<NewAccount | null>(null);
  const [error, setError] = useState<string | null>(null);
  const user = client.state.session.value?.user ?? "";

  async function renew(): Promise<void> {
    setAsking(false);
    setError(null);
    try {
      setFresh({ user, recoveryCode: await client.renewRecoveryCode() });
    } catch (err) {
      setError(errorText(err));
    }
  }

  return (
    <Section title="Recovery code" testid="settings-recovery">
      <p class="muted">With your recovery code and password you get back in when every device is lost. Lost the code? Make a new one: the old one stops working.</p>
      <FormError error={error} />
      <button type="button" class="button button--ghost button--wide" onClick={() => setAsking(true)} data-testid="recovery-renew">
        Make a new recovery code
      </button>
      {asking && (
        <ConfirmDialog
          title="Make a new recovery code?"
          text="Your current recovery code will stop working. The new one is shown once."
          confirm="Make a new code"
          onConfirm={() => void renew()}
          onClose={() => setAsking(false)}
        />
      )}
      {fresh && (
        <Dialog title="Your new recovery code" onClose={() => undefined} noClose testid="recovery-renewed">
          <RecoveryCode account={fresh} onDone={() => setFresh(null)} />
        </Dialog>
      )}
    </Section>
  );
}

function DevicesSection(): JSX.Element {
  const client = useClient();
  const [devices, setDevices] = useState<DeviceView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [renaming, setRenaming] = useState<string | null>(null);
  const [newName, setNewName] = useState("");
  const [removing, setRemoving] = useState<DeviceView | null>(null);
  const [linking, setLinking] = useState(false);

  async function load(): Promise<void> {
    try {
      setDevices(await client.devices());
    } catch (err) {
      setError(errorText(err));
    }
  }

  useEffect(() => {
    void load();
  }, []);

  async function rename(device: string): Promise<void> {
    const name = newName.trim();
    setRenaming(null);
    if (!name) return;
    try {
      await client.renameDevice(device, name);
      await load();
    } catch (err) {
      setError(errorText(err));
    }
  }

  return (
    <Section title="Devices" testid="devices">
      <p class="muted">Every device has its own keys. Remove the ones you no longer use.</p>
      <FormError error={error} />
      {devices === null && !error && <div class="spinner spinner--small" aria-label="Loading devices" />}
      <ul class="device-list" data-testid="devices-list">
        {(devices ?? []).map((d) => (
          <li key={d.device} class="device" data-testid="device" data-device={d.device} data-current={d.current}>
            <DeviceIcon />
            {renaming === d.device ? (
              <form
                class="inline-form inline-form--grow"
                onSubmit={(e) => {
                  e.preventDefault();
                  void rename(d.device);
                }}
              >
                <input
                  class="input"
                  aria-label="Device name"
                  value={newName}
                  autofocus
                  onInput={(e) => setNewName(e.currentTarget.value)}
                  onKeyDown={(e) => {
                    if (e.key === "Escape") {
                      e.stopPropagation();
                      setRenaming(null);
                    }
                  }}
                  data-testid="device-name-input"
                />
                <button type="submit" class="button button--small" data-testid="device-rename-save">
                  Save
                </button>
              </form>
            ) : (
              <span class="device__info">
                <span class="device__name">
                  {d.name || d.device}
                  {d.current && <span class="tag">This device</span>}
                </span>
                <span class="device__meta" data-testid="device-meta">
                  {d.current ? "Active now" : d.lastSeenMs > 0 ? `Last active ${formatListTime(d.lastSeenMs)}` : "Never active"}
                  {` · added ${formatListTime(d.createdMs)}`}
                </span>
              </span>
            )}
            {renaming !== d.device && (
              <span class="device__actions">
                <button
                  type="button"
                  class="icon-button icon-button--small"
                  aria-label={`Rename ${d.name}`}
                  title="Rename"
                  onClick={() => {
                    setNewName(d.name);
                    setRenaming(d.device);
                  }}
                  data-testid="device-rename"
                >
                  <EditIcon size={18} />
                </button>
                {!d.current && (
                  <button
                    type="button"
                    class="icon-button icon-button--small"
                    aria-label={`Remove ${d.name}`}
                    title="Remove"
                    onClick={() => setRemoving(d)}
                    data-testid="device-remove"
                  >
                    <TrashIcon size={18} />
                  </button>
                )}
              </span>
            )}
          </li>
        ))}
      </ul>
      <button type="button" class="button button--ghost button--wide" onClick={() => setLinking(true)} data-testid="link-device">
        <PlusIcon size={18} /> Link a new device
      </button>
      {removing && (
        <RemoveDeviceDialog
          device={removing}
          onClose={() => setRemoving(null)}
          onRemoved={() => {
            setRemoving(null);
            void load();
          }}
        />
      )}
      {linking && (
        <LinkDeviceDialog
          onClose={() => {
            setLinking(false);
            void load();
          }}
        />
      )}
    </Section>
  );
}

function RemoveDeviceDialog({ device, onClose, onRemoved }: { device: DeviceView; onClose: () => void; onRemoved: () => void }): JSX.Element {
  const client = useClient();
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <Dialog title={`Remove ${device.name}?`} onClose={onClose} testid="device-remove-dialog">
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          client.removeDevice(device.device, password).then(onRemoved, (err: unknown) => {
            setError(errorText(err));
            setBusy(false);
          });
        }}
      >
        <p class="dialog__text">It will be logged out and get no new messages. Enter your password to confirm.</p>
        <label class="field">
          <span class="field__label">Password</span>
          <input
            class="input"
            type="password"
            autocomplete="current-password"
            required
            autofocus
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
            data-testid="device-remove-password"
          />
        </label>
        <FormError error={error} />
        <div class="dialog__actions">
          <button type="button" class="button button--ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="button button--danger" disabled={busy || !password} data-testid="device-remove-confirm">
            Remove device
          </button>
        </div>
      </form>
    </Dialog>
  );
}

type LinkStage =
  | { stage: "starting" }
  | { stage: "code"; code: string }
  | { stage: "request"; code: string; device: string; name: string }
  | { stage: "linking"; code: string; device: string; name: string }
  | { stage: "done"; name: string }
  | { stage: "error"; message: string };

function LinkDeviceDialog({ onClose }: { onClose: () => void }): JSX.Element {
  const client = useClient();
  const [s, setS] = useState<LinkStage>({ stage: "starting" });
  const [share, setShare] = useState(true);

  useEffect(() => {
    let live = true;
    client.linkStart().then(
      ({ code, request }) => {
        if (!live) return;
        setS({ stage: "code", code });
        request.then(
          (r) => live && setS({ stage: "request", code, device: r.device, name: r.name }),
          (err: unknown) => live && setS({ stage: "error", message: errorText(err) }),
        );
      },
      (err: unknown) => live && setS({ stage: "error", message: errorText(err) }),
    );
    return () => {
      live = false;
    };
  }, []);

  async function confirm(device: string, name: string, code: string): Promise<void> {
    setS({ stage: "linking", code, device, name });
    try {
      await client.linkConfirm(device, share);
      setS({ stage: "done", name });
    } catch (err) {
      setS({ stage: "error", message: errorText(err) });
    }
  }

  return (
    <Dialog title="Link a new device" onClose={onClose} testid="link-dialog">
      {s.stage === "starting" && <div class="spinner" aria-label="Preparing a code" />}
      {s.stage === "code" && (
        <div class="link">
          <p class="dialog__text">
            On the new device, open taube, choose <strong>Log in → Link from another device</strong>, and type this code
            or scan it:
          </p>
          <p class="code code--big" data-testid="link-code">
            {s.code}
          </p>
          <div class="qr-box">
            <QrCode text={s.code} label="Link code as a QR code" />
          </div>
          <p class="muted waiting--inline" role="status">
            <span class="spinner spinner--small" aria-hidden="true" /> Waiting for the new device…
          </p>
        </div>
      )}
      {(s.stage === "request" || s.stage === "linking") && (
        <div class="link" data-testid="link-request">
          <p class="dialog__text">
            <strong>{s.name || s.device}</strong> asks to join your account. Only confirm if it is your device and you
            just typed the code <span class="code">{s.code}</span> there.
          </p>
          <label class="checkbox">
            <input type="checkbox" checked={share} onChange={(e) => setShare(e.currentTarget.checked)} data-testid="link-share-history" />
            <span>Share my message history with it</span>
          </label>
          <div class="dialog__actions">
            <button type="button" class="button button--ghost" onClick={onClose} data-testid="link-reject">
              It's not mine
            </button>
            <button
              type="button"
              class="button"
              disabled={s.stage === "linking"}
              onClick={() => void confirm(s.device, s.name, s.code)}
              data-testid="link-confirm"
            >
              {s.stage === "linking" ? "Linking…" : "Confirm"}
            </button>
          </div>
        </div>
      )}
      {s.stage === "done" && (
        <div class="link" data-testid="link-done">
          <p class="dialog__text">{s.name} is linked. It has your keys now and receives your messages.</p>
          <div class="dialog__actions">
            <button type="button" class="button" onClick={onClose}>
              Done
            </button>
          </div>
        </div>
      )}
      {s.stage === "error" && (
        <p class="form__error" role="alert">
          {s.message}
        </p>
      )}
    </Dialog>
  );
}
