// A dev-only stand-in for the engine: the `Client` contract over in-memory
// signals, with a few chats, attachments and a contact who answers. Used by
// dev/main.tsx (`npx vite`, then /dev/index.html) for screenshots and for
// working on the screens. Never imported by src/: not in the production bundle.
import { computed, signal } from "@preact/signals";
import { fakeCalls } from "./calls";
import type { ConnectorAnswer, ConnectorStatus, ConnectorsView } from "../src/client/connectors";
import type {
  AttachmentEntry,
  Client,
  Connection,
  Contact,
  ConversationView,
  DeviceView,
  MessageView,
  Notice,
  Portal,
  Role,
  Session,
  Settings,
  Transfer,
  Verification,
} from "../src/client/model";

const ME = "mara@taube.example";
const ALICE = "alice@taube.example";
const BEN = "ben.okafor@club.example";
const CHLOE = "chloe@taube.example";
const DAVID = "david@mail.example";

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

let seq = 1000;
const rid = () => Math.random().toString(36).slice(2, 12) + Math.random().toString(36).slice(2, 12);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ConvData {
  id: string;
  kind: "direct" | "group";
  title: string;
  avatar: string | null;
  members: Record<string, Role>;
  unread: number;
  timerSeconds: number;
  typing: string[];
  messages: MessageView[];
  portal?: Portal;
}

function makeMessage(conversation: string, sender: string, ts: number, text: string, extra: Partial<MessageView> = {}): MessageView {
  return {
    conversation,
    id: rid(),
    seq: seq++,
    sender,
    senderDevice: "dev1",
    ts,
    text,
    replyTo: null,
    edited: false,
    deleted: false,
    reactions: {},
    readBy: [],
    deliveredTo: [],
    status: sender === ME ? "read" : "received",
    expiresMs: null,
    attachments: [],
    mine: sender === ME,
    remote: null,
    relayed: null,
    ...extra,
  };
}

async function canvasBlob(w: number, h: number, paint: (ctx: CanvasRenderingContext2D) => void, type = "image/jpeg"): Promise<Blob> {
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  const ctx = c.getContext("2d") as CanvasRenderingContext2D;
  paint(ctx);
  return new Promise((resolve) => c.toBlob((b) => resolve(b as Blob), type, 0.85));
}

function paintLandscape(ctx: CanvasRenderingContext2D, w: number, h: number): void {
  const sky = ctx.createLinearGradient(0, 0, 0, h);
  sky.addColorStop(0, "#f6b26b");
  sky.addColorStop(0.45, "#f9d9a6");
  sky.addColorStop(0.46, "#7fb3c8");
  sky.addColorStop(1, "#2f6f86");
  ctx.fillStyle = sky;
  ctx.fillRect(0, 0, w, h);
  ctx.fillStyle = "#fff3c4";
  ctx.beginPath();
  ctx.arc(w * 0.68, h * 0.36, h * 0.1, 0, Math.PI * 2);
  ctx.fill();
  ctx.fillStyle = "#3d5a4f";
  ctx.beginPath();
  ctx.moveTo(0, h * 0.46);
  ctx.lineTo(w * 0.18, h * 0.26);
  ctx.lineTo(w * 0.34, h * 0.4);
  ctx.lineTo(w * 0.5, h * 0.2);
  ctx.lineTo(w * 0.72, h * 0.46);
  ctx.closePath();
  ctx.fill();
  ctx.fillStyle = "#2a4038";
  ctx.beginPath();
  ctx.moveTo(w * 0.45, h * 0.46);
  ctx.lineTo(w * 0.8, h * 0.18);
  ctx.lineTo(w, h * 0.34);
  ctx.lineTo(w, h * 0.46);
  ctx.closePath();
  ctx.fill();
  ctx.strokeStyle = "rgba(255,255,255,0.35)";
  ctx.lineWidth = Math.max(1, h / 200);
  for (let i = 0; i < 9; i++) {
    const y = h * (0.52 + i * 0.05);
    ctx.beginPath();
    ctx.moveTo(w * (0.55 - i * 0.02), y);
    ctx.lineTo(w * (0.8 + i * 0.01), y);
    ctx.stroke();
  }
}

function paintAvatar(ctx: CanvasRenderingContext2D, w: number, h: number, hue: number): void {
  const g = ctx.createLinearGradient(0, 0, w, h);
  g.addColorStop(0, `hsl(${hue} 60% 60%)`);
  g.addColorStop(1, `hsl(${hue + 40} 55% 40%)`);
  ctx.fillStyle = g;
  ctx.fillRect(0, 0, w, h);
  ctx.fillStyle = "rgba(255,255,255,0.85)";
  ctx.beginPath();
  ctx.arc(w / 2, h * 0.4, w * 0.18, 0, Math.PI * 2);
  ctx.fill();
  ctx.beginPath();
  ctx.ellipse(w / 2, h * 0.95, w * 0.34, h * 0.32, 0, 0, Math.PI * 2);
  ctx.fill();
}

export interface FixtureOptions {
  signedIn: boolean;
  connection?: Connection;
}

export async function createFixture(options: FixtureOptions): Promise<Client & { blobs: Map<string, Blob> }> {
  const now = Date.now();
  const blobs = new Map<string, Blob>();
  const urls = new Map<string, string>();

  async function store(blob: Blob, name: string, kind: AttachmentEntry["kind"], extra: Partial<AttachmentEntry> = {}): Promise<AttachmentEntry> {
    const id = rid() + rid();
    blobs.set(id, blob);
    return {
      blob: id,
      name,
      mime: blob.type,
      size: blob.size,
      encrypted_size: blob.size + 16,
      kind,
      key: { key: "k", sha256: "s" },
      ...extra,
    };
  }

  const photo = await canvasBlob(1600, 1066, (ctx) => paintLandscape(ctx, 1600, 1066));
  const photoThumb = await canvasBlob(96, 64, (ctx) => paintLandscape(ctx, 96, 64));
  const aliceAvatarBlob = await canvasBlob(256, 256, (ctx) => paintAvatar(ctx, 256, 256, 330));
  const aliceAvatar = URL.createObjectURL(aliceAvatarBlob);
  const photoEntry = await store(photo, "lake-at-dusk.jpg", "image", {
    width: 1600,
    height: 1066,
    thumbnail: await store(photoThumb, "thumb.jpg", "thumbnail", { width: 96, height: 64 }),
  });
  const pdfEntry = await store(new Blob(["%PDF-1.4\n% dev fixture\n"], { type: "application/pdf" }), "Route-plan-Dolomites.pdf", "pdf", {
    size: 284_311,
  });
  const voiceEntry = await store(new Blob([new Uint8Array(64)], { type: "audio/ogg" }), "voice-message.ogg", "voice", {
    duration_ms: 14_000,
    size: 23_400,
  });

  const contacts = signal<Record<string, Contact>>({
    [ME]: { user: ME, name: "Mara Lindqvist", avatar: null, verified: true },
    [ALICE]: { user: ALICE, name: "Alice Martin", avatar: aliceAvatar, verified: true },
    [BEN]: { user: BEN, name: "Ben Okafor", avatar: null, verified: false },
    [CHLOE]: { user: CHLOE, name: "Chloé Dubois", avatar: null, verified: false },
    [DAVID]: { user: DAVID, name: "", avatar: null, verified: false },
  });

  const data: ConvData[] = [];
  const alice: ConvData = {
    id: "c-alice",
    kind: "direct",
    title: "Alice Martin",
    avatar: aliceAvatar,
    members: { [ME]: "member", [ALICE]: "member" },
    unread: 0,
    timerSeconds: 0,
    typing: [],
    messages: [],
  };
  const a = (sender: string, ago: number, text: string, extra: Partial<MessageView> = {}) => {
    const m = makeMessage(alice.id, sender, now - ago, text, extra);
    alice.messages.push(m);
    return m;
  };
  a(ALICE, DAY + 5 * HOUR, "Are we still on for the lake on Saturday?");
  a(ME, DAY + 5 * HOUR - 2 * MIN, "Yes! I'll bring the small stove and coffee ☕");
  a(ALICE, DAY + 5 * HOUR - 3 * MIN, "Perfect. I printed the route, see https://maps.example.org/route/lake-loop for the map.");
  a(ALICE, DAY + 5 * HOUR - 3.5 * MIN, "", { attachments: [pdfEntry] });
  const q = a(ME, 3 * HOUR, "Made it to the top. Look at this light 😍", { attachments: [photoEntry] });
  q.reactions = { "❤️": [ALICE], "😮": [ALICE] };
  const r = a(ALICE, 3 * HOUR - 4 * MIN, "Wow, that's beautiful. Send me the full-size one for the club newsletter?", {
    replyTo: q.id,
  });
  r.reactions = { "👍": [ME] };
  a(ALICE, 2 * HOUR, "", { attachments: [voiceEntry] });
  a(ME, 90 * MIN, "Sure, I'll send the originals tonight.", { edited: true });
  a(ALICE, 80 * MIN, "", { deleted: true });
  a(ME, 20 * MIN, "Did you get home safely?", { status: "read" });
  a(ME, 2 * MIN, "🎉", { status: "delivered" });
  data.push(alice);

  const club: ConvData = {
    id: "c-club",
    kind: "group",
    title: "Climbing club 🧗",
    avatar: null,
    members: { [ME]: "admin", [BEN]: "owner", [CHLOE]: "member", [ALICE]: "member", [DAVID]: "member" },
    unread: 3,
    timerSeconds: 604_800,
    typing: [CHLOE],
    messages: [],
  };
  const g = (sender: string, ago: number, text: string, extra: Partial<MessageView> = {}) => {
    const m = makeMessage(club.id, sender, now - ago, text, extra);
    club.messages.push(m);
    return m;
  };
  g(BEN, 2 * DAY, "Welcome to the new group, everyone. It's end-to-end encrypted now 🔐");
  g(CHLOE, 2 * DAY - 10 * MIN, "Finally! Bye bye, old mailing list.", { reactions: { "😂": [BEN, ME, ALICE] } });
  g(DAVID, 40 * MIN, "Who's driving to the crag on Sunday? I can take three people.");
  g(BEN, 35 * MIN, "Me and Chloé. Leaving at 8:00 from the station.");
  g(CHLOE, 12 * MIN, "I'll bring the second rope. Anyone have a spare harness for my cousin?", { expiresMs: now + 6 * DAY });
  data.push(club);

  const ben: ConvData = {
    id: "c-ben",
    kind: "direct",
    title: "Ben Okafor",
    avatar: null,
    members: { [ME]: "member", [BEN]: "member" },
    unread: 1,
    timerSeconds: 3600,
    typing: [],
    messages: [makeMessage("c-ben", BEN, now - 4 * DAY, "Can you send me the membership list as a spreadsheet?")],
  };
  data.push(ben);

  const david: ConvData = {
    id: "c-david",
    kind: "direct",
    title: DAVID,
    avatar: null,
    members: { [ME]: "member", [DAVID]: "member" },
    unread: 0,
    timerSeconds: 0,
    typing: [],
    messages: [makeMessage("c-david", ME, now - 9 * DAY, "Thanks for the ride last week!", { status: "pending" })],
  };
  data.push(david);

  // an e-mail portal: the connector brings Jonas's mails in, and says how
  // Mara's replies went out
  const JONAS = "jonas.weber@mailbox.example";
  const jonas: ConvData = {
    id: "c-jonas",
    kind: "group",
    title: JONAS,
    avatar: null,
    members: { [ME]: "owner" },
    unread: 0,
    timerSeconds: 0,
    typing: [],
    messages: [],
    portal: { network: "email", chat: JONAS, peers: [JONAS], title: JONAS, by: "connector1" },
  };
  const remote = { network: "email", sender: JONAS, name: "Jonas Weber", encrypted: true };
  const mail = (sender: string, ago: number, text: string, extra: Partial<MessageView> = {}) => {
    const m = makeMessage(jonas.id, sender, now - ago, text, extra);
    jonas.messages.push(m);
    return m;
  };
  mail(ME, 3 * DAY, "Hi Jonas, do you still have the old club photos?", { relayed: { network: "email", encrypted: false, error: "", plainTo: [] } });
  mail(ME, 3 * DAY - 2 * MIN, "Yes, a whole box! I'll scan them this week.", { mine: false, remote, status: "received" });
  mail(ME, 5 * HOUR, "Great, thank you 🙏", { relayed: { network: "email", encrypted: true, error: "", plainTo: [] } });
  data.push(jonas);

  const noticesList: Notice[] = [
    { kind: "key-changed", conversation: "c-club", user: DAVID, verified: false, reason: "new device", ts: now - 41 * MIN },
    { kind: "missing", conversation: "c-club", sender: DAVID, count: 2, before: club.messages[2]?.id ?? "", ts: now - 40 * MIN },
    { kind: "timer", conversation: "c-club", seconds: 604_800, ts: now - 30 * MIN },
    { kind: "membership", conversation: "c-club", text: "Ben added David", ts: now - 2 * DAY + 5 * MIN },
  ];

  const version = signal(0);
  const bump = () => (version.value += 1);
  const openId = signal<string | null>(null);
  const session = signal<Session | null>(options.signedIn ? { user: ME, device: "dev1", server: "taube.example" } : null);
  const connection = signal<Connection>(options.connection ?? "online");
  const transfers = signal<Transfer[]>([]);
  const verification = signal<Verification | null>(null);
  const settings = signal<Settings>({ theme: "system", notifications: false, name: "Mara Lindqvist" });
  const error = signal<string | null>(null);
  const notices = signal<Notice[]>(noticesList);

  const find = (id: string) => data.find((c) => c.id === id);

  const conversations = computed<ConversationView[]>(() => {
    void version.value;
    return data.map((c) => {
      const last = c.messages[c.messages.length - 1] ?? null;
      return {
        id: c.id,
        kind: c.kind,
        title: c.title,
        avatar: c.avatar,
        members: { ...c.members },
        myRole: c.members[ME] ?? null,
        unread: c.unread,
        last,
        lastTs: last?.ts ?? 0,
        timerSeconds: c.timerSeconds,
        typing: [...c.typing],
        portal: c.portal ?? null,
      };
    });
  });
  const messages = computed<MessageView[]>(() => {
    void version.value;
    const c = openId.value ? find(openId.value) : undefined;
    return c ? c.messages.map((m) => ({ ...m })) : [];
  });

  function update(conversation: string, id: string, change: Partial<MessageView>): void {
    const c = find(conversation);
    const i = c?.messages.findIndex((m) => m.id === id) ?? -1;
    if (c && i >= 0) {
      c.messages[i] = { ...(c.messages[i] as MessageView), ...change };
      bump();
    }
  }

  function progress(conversation: string, id: string): void {
    for (const [delay, status] of [
      [500, "sent"],
      [1300, "delivered"],
      [3000, "read"],
    ] as const) {
      setTimeout(() => {
        if (connection.value === "online") update(conversation, id, { status });
      }, delay);
    }
  }

  function answer(conversation: string, text: string): void {
    const c = find(conversation);
    if (!c || c.kind !== "direct") return;
    const other = Object.keys(c.members).find((m) => m !== ME) as string;
    setTimeout(() => {
      c.typing = [other];
      bump();
    }, 1500);
    setTimeout(() => {
      c.typing = [];
      c.messages.push(makeMessage(c.id, other, Date.now(), text));
      if (openId.value !== c.id || document.hidden) c.unread += 1;
      bump();
    }, 4000);
  }

  const client: Client & { blobs: Map<string, Blob> } = {
    blobs,
    connectors: fakeConnectors(),
    calls: fakeCalls(),
    archives: {
      async export() {
        return { file: new Blob(["TAUBE-ARCHIVE 1\n"]), code: "7K3M-Q9XD-2HPR-W4TB-8NCV-5FJA" };
      },
      async import() {
        return { messages: 42, leftOut: [] };
      },
    },
    state: {
      session,
      connection,
      conversations,
      messages,
      notices,
      contacts,
      transfers,
      verification,
      settings,
      error,
    },
    async register(address) {
      await sleep(600);
      void address; // the fixture's data belongs to ME whatever was typed
      session.value = { user: ME, device: "dev1", server: "taube.example" };
      return { user: ME, recoveryCode: "K7QM-4XRT-PW2H-9CZD-LM3V-A8NE" };
    },
    async loginWithRecoveryCode(address) {
      await sleep(800);
      session.value = { user: address, device: "dev2", server: "" };
    },
    async loginWithLinkCode(address) {
      await sleep(6000);
      session.value = { user: address, device: "dev3", server: "" };
    },
    async logout() {
      session.value = null;
    },
    async startOver(address) {
      await sleep(600);
      session.value = { user: address, device: "dev4", server: "" };
      return { user: address, recoveryCode: "Q3WE-8RTY-UP4A-SD6F-GH7J-KL2Z" };
    },
    async renewRecoveryCode() {
      await sleep(300);
      return "N5BV-C2XZ-LK9J-HG4F-DS3A-PO8I";
    },
    async privacy() {
      return { presence: "contacts" as const, findable: false, name: "" };
    },
    async serverDomain() {
      return "example.org";
    },
    async setPrivacy(p) {
      return p;
    },
    async createInvite() {
      await sleep(200);
      return { url: `${location.origin}/#/invite/${ME}/q1w2e3r4t5y6u7i8o9p0aa/z1x2c3v4b5n6m7l8k9j0hh`, expiresMs: now + 7 * DAY };
    },
    async revokeInvite() {},
    async checkInvite(url) {
      return { url, inviter: ME, name: "Ana" };
    },
    async joinInvite() {
      return conversations.value[0]?.id ?? "";
    },
    async presence() {
      return { visible: true, online: true, lastSeenMs: null };
    },
    async searchDirectory() {
      return [];
    },
    async renameContact(user, alias) {
      const current = contacts.value[user] ?? { user, name: "", avatar: null, verified: false };
      contacts.value = { ...contacts.value, [user]: { ...current, alias } };
    },
    async devices(): Promise<DeviceView[]> {
      await sleep(150);
      return [
        { device: "dev1", name: "Chromium on Linux", createdMs: now - 40 * DAY, lastSeenMs: now, current: true },
        { device: "dev7", name: "Phone (Firefox on Android)", createdMs: now - 20 * DAY, lastSeenMs: now - 2 * HOUR, current: false },
        { device: "dev9", name: "taube CLI on the NAS", createdMs: now - 3 * DAY, lastSeenMs: now - 3 * DAY, current: false },
      ];
    },
    async renameDevice() {},
    async removeDevice() {},
    async linkStart() {
      await sleep(200);
      return { code: "481-592-736", request: sleep(4000).then(() => ({ device: "dev11", name: "Safari on iOS" })) };
    },
    async linkConfirm() {
      await sleep(700);
    },
    async setProfile(name) {
      settings.value = { ...settings.value, name };
      contacts.value = { ...contacts.value, [ME]: { ...(contacts.value[ME] as Contact), name } };
    },
    updateSettings(change) {
      settings.value = { ...settings.value, ...change };
    },
    open(id) {
      openId.value = id;
    },
    async reachedByMail(address) {
      return !address.endsWith("@taube.example");
    },
    async startChat(address) {
      const existing = data.find((c) => c.kind === "direct" && c.members[address]);
      if (existing) return existing.id;
      const c: ConvData = {
        id: `c-${rid()}`,
        kind: "direct",
        title: contacts.value[address]?.name || address,
        avatar: null,
        members: { [ME]: "member", [address]: "member" },
        unread: 0,
        timerSeconds: 0,
        typing: [],
        messages: [],
      };
      data.unshift(c);
      bump();
      return c.id;
    },
    async createGroup(title, members) {
      const c: ConvData = {
        id: `c-${rid()}`,
        kind: "group",
        title,
        avatar: null,
        members: Object.fromEntries([[ME, "owner"], ...members.map((m) => [m, "member"])]) as Record<string, Role>,
        unread: 0,
        timerSeconds: 0,
        typing: [],
        messages: [],
      };
      data.unshift(c);
      bump();
      return c.id;
    },
    async addMember(conversation, address, role = "member") {
      const c = find(conversation);
      if (c) c.members[address] = role;
      bump();
    },
    async removeMember(conversation, address) {
      const c = find(conversation);
      if (c) delete c.members[address];
      bump();
    },
    async setRole(conversation, address, role) {
      const c = find(conversation);
      if (c) c.members[address] = role;
      bump();
    },
    async leave(conversation) {
      const i = data.findIndex((c) => c.id === conversation);
      if (i >= 0) data.splice(i, 1);
      bump();
    },
    async rename(conversation, title) {
      const c = find(conversation);
      if (c) c.title = title;
      bump();
    },
    async setAvatar(conversation, image) {
      const c = find(conversation);
      if (c) c.avatar = URL.createObjectURL(image);
      bump();
    },
    async setTimer(conversation, seconds) {
      const c = find(conversation);
      if (c) c.timerSeconds = seconds;
      notices.value = [...notices.value, { kind: "timer", conversation, seconds, ts: Date.now() }];
      bump();
    },
    search(text) {
      const t = text.toLowerCase();
      return data.flatMap((c) => c.messages.filter((m) => !m.deleted && m.text.toLowerCase().includes(t)));
    },
    async sendText(conversation, text, replyTo) {
      const c = find(conversation);
      if (!c) throw new Error("no such chat");
      const m = makeMessage(conversation, ME, Date.now(), text, { status: "pending", replyTo: replyTo ?? null, seq: null });
      c.messages.push(m);
      bump();
      progress(conversation, m.id);
      if (/\?\s*$/u.test(text)) answer(conversation, "Good question. Let me check and get back to you.");
      return m.id;
    },
    async sendFile(conversation, file, name, caption, kind, extra) {
      const c = find(conversation);
      if (!c) throw new Error("no such chat");
      const entry = await store(file, name, kind ?? "file", { duration_ms: extra?.duration_ms });
      if (kind === "image") {
        const bitmap = await createImageBitmap(file);
        entry.width = bitmap.width;
        entry.height = bitmap.height;
        bitmap.close();
      }
      const m = makeMessage(conversation, ME, Date.now(), caption ?? "", { status: "pending", attachments: [entry], seq: null });
      c.messages.push(m);
      bump();
      const total = file.size;
      for (let i = 1; i <= 10; i++) {
        await sleep(120);
        transfers.value = [
          ...transfers.value.filter((t) => t.id !== m.id),
          { id: m.id, name, direction: "up", done: Math.round((total * i) / 10), total },
        ];
      }
      transfers.value = transfers.value.filter((t) => t.id !== m.id);
      progress(conversation, m.id);
      return m.id;
    },
    async react(conversation, target, emoji) {
      const c = find(conversation);
      const m = c?.messages.find((x) => x.id === target);
      if (!m) return;
      const users = m.reactions[emoji] ?? [];
      const next = users.includes(ME) ? users.filter((u) => u !== ME) : [...users, ME];
      update(conversation, target, { reactions: { ...m.reactions, [emoji]: next } });
    },
    async edit(conversation, target, text) {
      update(conversation, target, { text, edited: true });
    },
    async deleteForEveryone(conversation, target) {
      update(conversation, target, { deleted: true, text: "", attachments: [] });
    },
    async markRead(conversation) {
      const c = find(conversation);
      if (c && c.unread > 0) {
        c.unread = 0;
        bump();
      }
    },
    typing() {},
    async attachmentUrl(entry) {
      const cached = urls.get(entry.blob);
      if (cached) return cached;
      const blob = blobs.get(entry.blob);
      if (!blob) throw new Error("gone");
      await sleep(entry.kind === "thumbnail" ? 10 : 250);
      const url = URL.createObjectURL(blob);
      urls.set(entry.blob, url);
      return url;
    },
    async safetyNumber() {
      return "052384193766201948375510293846571092834756102938475610293847";
    },
    async verificationQr(user) {
      return `taube-verify:1:${ME}:${user}:q2Xb9fJd0s7HkPz1`;
    },
    async markVerified(user) {
      contacts.value = { ...contacts.value, [user]: { ...(contacts.value[user] as Contact), verified: true } };
    },
    async verifyScanned(user) {
      contacts.value = { ...contacts.value, [user]: { ...(contacts.value[user] as Contact), verified: true } };
    },
    async verifyStart(user) {
      const transaction = rid();
      verification.value = { stage: "waiting", transaction, user };
      await sleep(1500);
      verification.value = {
        stage: "emoji",
        transaction,
        user,
        emoji: [
          ["🐶", "Dog"],
          ["🔑", "Key"],
          ["🌵", "Cactus"],
          ["🎸", "Guitar"],
          ["🚀", "Rocket"],
          ["🍄", "Mushroom"],
          ["⚓", "Anchor"],
        ],
        decimals: [1234, 5678, 4321],
      };
    },
    async verifyAccept(transaction) {
      const v = verification.value;
      if (v) await client.verifyStart(v.user);
      void transaction;
    },
    async verifyConfirm(transaction) {
      const v = verification.value;
      if (!v) return;
      await client.markVerified(v.user);
      verification.value = { stage: "done", transaction, user: v.user, verified: true, reason: "" };
    },
    async verifyCancel() {
      verification.value = null;
    },
    dismissError() {
      error.value = null;
    },
  };
  return client;
}

/** One connector device ("Home server") that takes any password but "wrong". */
function fakeConnectors(): ConnectorsView {
  const device = "HOMESERVERDEVICE";
  const idle: ConnectorStatus = { device, network: "email", state: "unconfigured", address: "", error: "", fingerprint: "" };
  const statuses = signal<Record<string, ConnectorStatus>>({});
  const answers = signal<Record<string, ConnectorAnswer>>({});
  let n = 0;
  const answer = (request: string, outcome: ConnectorAnswer["outcome"], reason = "") => (answers.value = { ...answers.value, [request]: { outcome, reason } });
  return {
    statuses,
    answers,
    async query() {
      setTimeout(() => (statuses.value = { [device]: statuses.value[device] ?? idle }), 400);
    },
    async configure(_device, settings) {
      const request = `r${n++}`;
      answer(request, "checking");
      setTimeout(() => {
        if (settings.password === "wrong") return answer(request, "auth_failed", "IMAP log-in refused: wrong user name or password");
        statuses.value = { [device]: { ...idle, state: "connected", address: settings.address, fingerprint: "7F3A 91C2 0B44 DE18 5A60 C2E9 11F0 84B7 3D2A 6C05" } };
        answer(request, "connected");
      }, 900);
      return request;
    },
    async disconnect() {
      statuses.value = { [device]: idle };
      return `r${n++}`;
    },
  };
}
