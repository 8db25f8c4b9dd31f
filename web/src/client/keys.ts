// This device's keys, and what it knows and trusts of other devices
// (the port of taube.client.keys). Trust is on first use, per user: the
// first identity key seen is pinned; a different one later is a key
// change, shown in the chat, and for a verified user sending stops until
// they are verified again. Only devices whose certificate verifies under
// the pinned key get room keys or have their messages decrypted.
import { b64decode, b64encode, randomBytes } from "../crypto/base64";
import { CryptoError } from "../crypto/errors";
import { IdentityKeyPair, verifyDevice, verifyIdentityKey, type VerifiedDevice } from "../crypto/keys";
import { InboundGroupStore, OutboundGroup } from "../crypto/megolm";
import { DeviceAccount, OlmMachine } from "../crypto/olm";
import type { KeyCount, KeysResponse, UserKeys } from "../gen/proto";
import type { Api } from "./api";
import type { Db, IdentityRow } from "./db";
import type { Vault } from "./vault";

export const ONE_TIME_KEYS = 50;
const SECRETS = "secrets";

export interface KeyChange {
  user: string;
  verified: boolean;
  reason: string;
}

interface Sealed {
  user: string;
  device: string;
  token: string;
  seed: string;
  pickleKey: string;
  account: string;
  olm: string;
  inbound: string;
  outbound: Record<string, string>;
}

export class Keys {
  readonly outbound = new Map<string, OutboundGroup>();
  readonly devices = new Map<string, VerifiedDevice[]>();
  readonly identities = new Map<string, IdentityRow>();
  changes: KeyChange[] = [];
  onChange: (() => void) | null = null;
  private saving: Promise<void> = Promise.resolve();

  private constructor(
    private readonly db: Db,
    private readonly vault: Vault,
    private readonly api: Api,
    readonly user: string,
    readonly device: string,
    readonly token: string,
    readonly identity: IdentityKeyPair,
    readonly olm: OlmMachine,
    readonly inbound: InboundGroupStore,
    private readonly pickleKey: Uint8Array,
  ) {}

  static async create(
    db: Db,
    vault: Vault,
    api: Api,
    session: { user: string; device: string; token: string },
    identity: IdentityKeyPair,
    existing?: OlmMachine,
  ): Promise<Keys> {
    const olm = existing ?? new OlmMachine(DeviceAccount.create(), session.user, session.device);
    const keys = new Keys(
      db, vault, api, session.user, session.device, session.token, identity, olm, new InboundGroupStore(), randomBytes(32),
    );
    await keys.loadIdentities();
    await keys.save();
    return keys;
  }

  static async load(db: Db, vault: Vault, api: Api): Promise<Keys | null> {
    const row = await db.get("kv", SECRETS);
    if (row === undefined) return null;
    const sealed = await vault.open<Sealed>(row.value as Uint8Array);
    const pickleKey = b64decode(sealed.pickleKey);
    const olm = OlmMachine.fromPickle(sealed.olm, pickleKey, DeviceAccount.fromPickle(sealed.account, pickleKey));
    const keys = new Keys(
      db,
      vault,
      api,
      sealed.user,
      sealed.device,
      sealed.token,
      await IdentityKeyPair.fromSeed(b64decode(sealed.seed)),
      olm,
      InboundGroupStore.fromPickle(sealed.inbound, pickleKey),
      pickleKey,
    );
    for (const [conversation, pickle] of Object.entries(sealed.outbound)) {
      keys.outbound.set(conversation, OutboundGroup.fromPickle(pickle, pickleKey));
    }
    await keys.loadIdentities();
    return keys;
  }

  private async loadIdentities(): Promise<void> {
    for (const row of await this.db.all("identities")) this.identities.set(row.user, row);
  }

  /** Persist the crypto state; calls are serialised so the last one wins. */
  save(): Promise<void> {
    this.saving = this.saving.then(() => this.saveNow()).catch((e: unknown) => {
      console.error("saving keys failed", e);
    });
    return this.saving;
  }

  private async saveNow(): Promise<void> {
    const sealed: Sealed = {
      user: this.user,
      device: this.device,
      token: this.token,
      seed: b64encode(this.identity.seed()),
      pickleKey: b64encode(this.pickleKey),
      account: this.olm.account.pickle(this.pickleKey),
      olm: this.olm.pickle(this.pickleKey),
      inbound: this.inbound.pickle(this.pickleKey),
      outbound: Object.fromEntries([...this.outbound].map(([c, g]) => [c, g.pickle(this.pickleKey)])),
    };
    await this.db.put("kv", { key: SECRETS, value: await this.vault.seal(sealed) });
  }

  // ------------------------------------------------------------ own keys

  async publish(): Promise<void> {
    await this.api.call("PUT", "/keys/identity", await this.identity.identityKey(this.user));
    const account = this.olm.account;
    const certificate = await this.identity.certify(account.deviceKeys(this.user, this.device));
    await this.api.call<KeyCount>("POST", "/keys/upload", {
      device_keys: certificate,
      one_time_keys: await account.oneTimeKeys(this.user, this.device, ONE_TIME_KEYS),
      fallback_key: await account.fallbackKey(this.user, this.device),
    });
    account.markPublished();
    await this.save();
  }

  async replenish(): Promise<void> {
    const count = await this.api.call<KeyCount>("GET", "/keys/count");
    if (count.one_time_keys >= ONE_TIME_KEYS / 2) return;
    const account = this.olm.account;
    await this.api.call<KeyCount>("POST", "/keys/upload", {
      one_time_keys: await account.oneTimeKeys(this.user, this.device, ONE_TIME_KEYS - count.one_time_keys),
    });
    account.markPublished();
    await this.save();
  }

  // ------------------------------------------------------------ others' devices

  pinned(user: string): IdentityRow | undefined {
    return this.identities.get(user);
  }

  blocked(users: string[]): string[] {
    return users.filter((u) => {
      const row = this.identities.get(u);
      return row !== undefined && row.verified && row.changed;
    });
  }

  async markVerified(user: string): Promise<void> {
    const row = this.identities.get(user);
    if (row === undefined) throw new CryptoError("untrusted_device", `no identity key known for ${user}`);
    const next = { ...row, verified: true, changed: false };
    this.identities.set(user, next);
    await this.db.put("identities", next);
  }

  async refresh(users: string[]): Promise<void> {
    if (users.length === 0) return;
    const found = await this.api.call<KeysResponse>("POST", "/keys/query", { users });
    const seen = new Set<string>();
    for (const entry of found.users) {
      seen.add(entry.user);
      this.devices.set(entry.user, await this.verify(entry.user, entry));
    }
    for (const user of users) if (!seen.has(user)) this.devices.set(user, []);
    if (this.changes.length && this.onChange) this.onChange();
  }

  private async verify(user: string, entry: UserKeys): Promise<VerifiedDevice[]> {
    if (!entry.identity) return [];
    if (entry.identity.user !== user) {
      this.changes.push({ user, verified: false, reason: "identity key of another user" });
      return [];
    }
    let identityKey: string;
    try {
      identityKey = await verifyIdentityKey(entry.identity);
    } catch {
      this.changes.push({ user, verified: false, reason: "identity key with a bad signature" });
      return [];
    }
    const pinned = this.identities.get(user);
    if (pinned === undefined) {
      const row = { user, identityKey, verified: false, changed: false };
      this.identities.set(user, row);
      await this.db.put("identities", row);
    } else if (pinned.identityKey !== identityKey) {
      const row = { ...pinned, identityKey, changed: true };
      this.identities.set(user, row);
      await this.db.put("identities", row);
      this.changes.push({ user, verified: pinned.verified, reason: "identity key changed" });
    }
    const devices: VerifiedDevice[] = [];
    for (const keys of entry.devices ?? []) {
      if (keys.user !== user) {
        this.changes.push({ user, verified: false, reason: `device ${keys.device} is another user's` });
        continue;
      }
      try {
        devices.push(await verifyDevice(identityKey, keys));
      } catch {
        this.changes.push({ user, verified: false, reason: `device ${keys.device} has no valid certificate` });
      }
    }
    return devices;
  }

  async devicesOf(users: string[]): Promise<VerifiedDevice[]> {
    const missing = users.filter((u) => !this.devices.has(u));
    if (missing.length) await this.refresh(missing);
    return users.flatMap((u) => this.devices.get(u) ?? []);
  }

  async findDevice(user: string, device: string): Promise<VerifiedDevice | null> {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (attempt || !this.devices.has(user)) await this.refresh([user]);
      const found = this.devices.get(user)?.find((d) => d.device === device);
      if (found) return found;
    }
    return null;
  }

  forget(user: string): void {
    this.devices.delete(user);
  }

  /** Free the wasm objects (log out, tests). */
  free(): void {
    this.olm.account.free();
    this.olm.free();
    this.inbound.free();
    for (const group of this.outbound.values()) group.free();
  }
}
