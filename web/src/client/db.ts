// The browser profile: one IndexedDB database per origin.
//
// Secrets (the identity key, the device token, the Olm and Megolm state)
// live in the `kv` store only as one blob sealed by vault.ts under a
// non-extractable WebCrypto key. Messages are stored as the SDK's profile
// stores them (see docs/threat-model.md: the device is trusted).

export const DB_NAME = "taube";
const VERSION = 1;

export interface MessageRow {
  conversation: string;
  id: string;
  seq: number | null;
  sender: string;
  senderDevice: string;
  ts: number;
  type: string;
  content: Record<string, unknown>;
  status: "pending" | "sent" | "received" | "failed";
  expiresMs: number | null;
  session: string | null;
  /** insertion order, for a stable sort of messages without seq */
  order: number;
}

export interface OutboxRow {
  id: string;
  conversation: string;
  /** the MessagePayload JSON */
  payload: string;
  createdMs: number;
  expireMs: number | null;
  order: number;
  /** a file still to encrypt and upload (kept in `attachments` as
   * `pending:<id>`); the payload's attachment is a placeholder until then */
  upload?: PendingUpload | null;
}

export interface PendingUpload {
  name: string;
  kind: string;
  caption: string;
  extra: Record<string, unknown>;
}

export interface UndecryptedRow {
  conversation: string;
  seq: number;
  session: string;
  frame: string;
}

export interface ChainRow {
  conversation: string;
  events: unknown[];
  updatedMs: number;
}

export interface IdentityRow {
  user: string;
  identityKey: string;
  verified: boolean;
  changed: boolean;
}

export interface ProfileRow {
  user: string;
  name: string;
  avatar: Record<string, unknown> | null;
  ts: number;
}

export interface AttachmentRow {
  blob: string;
  data: Blob;
}

type Stores = {
  kv: { key: string; value: unknown };
  messages: MessageRow;
  outbox: OutboxRow;
  undecrypted: UndecryptedRow;
  chains: ChainRow;
  identities: IdentityRow;
  profiles: ProfileRow;
  attachments: AttachmentRow;
};
export type StoreName = keyof Stores;

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class Db {
  private constructor(private readonly db: IDBDatabase) {}

  static async open(name = DB_NAME): Promise<Db> {
    const open = indexedDB.open(name, VERSION);
    open.onupgradeneeded = () => {
      const db = open.result;
      db.createObjectStore("kv", { keyPath: "key" });
      const messages = db.createObjectStore("messages", { keyPath: ["conversation", "id"] });
      messages.createIndex("conversation", "conversation");
      messages.createIndex("expires", "expiresMs");
      db.createObjectStore("outbox", { keyPath: "id" });
      db.createObjectStore("undecrypted", { keyPath: ["conversation", "seq"] });
      db.createObjectStore("chains", { keyPath: "conversation" });
      db.createObjectStore("identities", { keyPath: "user" });
      db.createObjectStore("profiles", { keyPath: "user" });
      db.createObjectStore("attachments", { keyPath: "blob" });
    };
    return new Db(await request(open));
  }

  close(): void {
    this.db.close();
  }

  async get<S extends StoreName>(store: S, key: IDBValidKey): Promise<Stores[S] | undefined> {
    const tx = this.db.transaction(store, "readonly");
    return (await request(tx.objectStore(store).get(key))) as Stores[S] | undefined;
  }

  async all<S extends StoreName>(store: S): Promise<Stores[S][]> {
    const tx = this.db.transaction(store, "readonly");
    return (await request(tx.objectStore(store).getAll())) as Stores[S][];
  }

  async byIndex<S extends StoreName>(store: S, index: string, key: IDBValidKey): Promise<Stores[S][]> {
    const tx = this.db.transaction(store, "readonly");
    return (await request(tx.objectStore(store).index(index).getAll(key))) as Stores[S][];
  }

  /** Several writes in one transaction; resolves once it is committed. */
  async write(
    stores: StoreName[],
    body: (put: <S extends StoreName>(store: S, row: Stores[S]) => void, del: (store: StoreName, key: IDBValidKey) => void) => void,
  ): Promise<void> {
    const tx = this.db.transaction(stores, "readwrite", { durability: "strict" });
    const done = new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("transaction aborted"));
    });
    body(
      (store, row) => void tx.objectStore(store).put(row),
      (store, key) => void tx.objectStore(store).delete(key),
    );
    await done;
  }

  put<S extends StoreName>(store: S, row: Stores[S]): Promise<void> {
    return this.write([store], (put) => put(store, row));
  }

  delete(store: StoreName, key: IDBValidKey): Promise<void> {
    return this.write([store], (_put, del) => del(store, key));
  }

  /** Remove the whole profile (log out). */
  static async destroy(name = DB_NAME): Promise<void> {
    await request(indexedDB.deleteDatabase(name));
  }
}
