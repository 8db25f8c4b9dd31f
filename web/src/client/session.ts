// The account on this device: signing up, logging in with the recovery
// code, logging out, the account's devices, and this browser's settings.
// It holds the keys once there are some; the other parts reach them
// through `Account`.
import { signal } from "@preact/signals";
import { newRecoveryCode, openBackup, sealBackup } from "../crypto/backup";
import { b64decode, b64encodePadded } from "../crypto/base64";
import { IdentityKeyPair } from "../crypto/keys";
import type { DeviceList, KeyBackup, Session as SessionBody } from "../gen/proto";
import type { Api } from "./api";
import { Db } from "./db";
import { Keys } from "./keys";
import type { DeviceView, NewAccount, Session as SignedIn, Settings } from "./model";
import { ClientError, parseAddress, type Account } from "./types";
import type { Vault } from "./vault";

const DEFAULT_SETTINGS: Settings = { theme: "system", notifications: false, name: "" };

export class Session implements Account {
  /** who is signed in, once the profile is loaded */
  readonly session = signal<SignedIn | null>(null);
  readonly settings = signal<Settings>(DEFAULT_SETTINGS);
  private current: Keys | null = null;

  constructor(
    private readonly db: Db,
    private readonly vault: Vault,
    private readonly api: Api,
    /** start everything else with the keys of a new sign-in */
    private readonly signedIn: (keys: Keys) => Promise<void>,
  ) {}

  get keys(): Keys | null {
    return this.current;
  }

  need(): Keys {
    if (!this.current) throw new ClientError("sign up or log in first");
    return this.current;
  }

  /** The profile of an earlier visit: its settings, and its keys if someone signed in. */
  async resume(): Promise<Keys | null> {
    const settings = await this.db.get("kv", "settings");
    if (settings) this.settings.value = { ...DEFAULT_SETTINGS, ...(settings.value as Settings) };
    return Keys.load(this.db, this.vault, this.api);
  }

  /** From now on these are the account's keys (and its token the API's). */
  adopt(keys: Keys): void {
    this.current = keys;
    this.api.token = keys.token;
  }

  /** Tell the screens who is signed in. */
  announce(): void {
    const keys = this.need();
    this.session.value = { user: keys.user, device: keys.device, server: location.origin };
  }

  async register(address: string, password: string, deviceName: string): Promise<NewAccount> {
    const user = parseAddress(address);
    const session = await this.api.call<SessionBody>("POST", "/accounts", { address: user, password, device_name: deviceName });
    this.api.token = session.token;
    const identity = await IdentityKeyPair.generate();
    const keys = await Keys.create(this.db, this.vault, this.api, session, identity);
    await keys.publish();
    const code = newRecoveryCode();
    const sealed = await sealBackup(identity, user, code);
    await this.api.call("PUT", "/keys/backup", { sealed: b64encodePadded(sealed) } satisfies KeyBackup);
    this.updateSettings({ name: deviceName ? this.settings.value.name : "" });
    await this.signedIn(keys);
    return { user, recoveryCode: code };
  }

  async loginWithRecoveryCode(address: string, password: string, code: string, deviceName: string): Promise<void> {
    const user = parseAddress(address);
    const session = await this.api.call<SessionBody>("POST", "/sessions", { address: user, password, device_name: deviceName });
    this.api.token = session.token;
    let identity: IdentityKeyPair;
    try {
      const backup = await this.api.call<KeyBackup>("GET", "/keys/backup");
      identity = await openBackup(b64decode(backup.sealed), user, code);
    } catch (e) {
      await this.api.call("DELETE", "/sessions/current").catch(() => undefined);
      this.api.token = null;
      throw e;
    }
    const keys = await Keys.create(this.db, this.vault, this.api, session, identity);
    await keys.publish();
    await this.signedIn(keys);
  }

  /** A new recovery code: the identity key sealed again under it replaces
   * the backup on the server, so the old code opens nothing any more. */
  async renewRecoveryCode(): Promise<string> {
    const keys = this.need();
    const code = newRecoveryCode();
    const sealed = await sealBackup(keys.identity, keys.user, code);
    await this.api.call("PUT", "/keys/backup", { sealed: b64encodePadded(sealed) } satisfies KeyBackup);
    return code;
  }

  /** Every device and the recovery code are lost: keep the address (the
   * password proves it), make a new identity key and a new recovery code,
   * and remove the old devices, whose keys nobody holds any more. Old
   * history is gone; contacts see a key change. */
  async startOver(address: string, password: string, deviceName: string): Promise<NewAccount> {
    const user = parseAddress(address);
    const session = await this.api.call<SessionBody>("POST", "/sessions", { address: user, password, device_name: deviceName });
    this.api.token = session.token;
    const devices = await this.api.call<DeviceList>("GET", "/devices");
    for (const d of devices.devices) {
      if (d.device !== session.device) await this.api.call("DELETE", `/devices/${encodeURIComponent(d.device)}`, { password });
    }
    const identity = await IdentityKeyPair.generate();
    const keys = await Keys.create(this.db, this.vault, this.api, session, identity);
    await keys.publish();
    const code = newRecoveryCode();
    await this.api.call("PUT", "/keys/backup", { sealed: b64encodePadded(await sealBackup(identity, user, code)) } satisfies KeyBackup);
    await this.signedIn(keys);
    return { user, recoveryCode: code };
  }

  /** End the session on the server and wipe this browser's profile (the
   * caller closes the connection first). */
  async logout(): Promise<void> {
    await this.api.call("DELETE", "/sessions/current").catch(() => undefined);
    this.current?.free();
    this.db.close();
    await Db.destroy();
    location.reload();
  }

  async devices(): Promise<DeviceView[]> {
    const list = await this.api.call<DeviceList>("GET", "/devices");
    return list.devices.map((d) => ({
      device: d.device,
      name: d.name,
      createdMs: d.created_ms,
      lastSeenMs: d.last_seen_ms,
      current: d.current ?? false,
    }));
  }

  async renameDevice(device: string, name: string): Promise<void> {
    await this.api.call("PATCH", `/devices/${encodeURIComponent(device)}`, { name });
  }

  async removeDevice(device: string, password: string): Promise<void> {
    await this.api.call("DELETE", `/devices/${encodeURIComponent(device)}`, { password });
  }

  updateSettings(change: Partial<Settings>): void {
    this.settings.value = { ...this.settings.value, ...change };
    void this.db.put("kv", { key: "settings", value: this.settings.value });
  }
}
