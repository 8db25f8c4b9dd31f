// The service worker: keeps the app shell (index.html, the hashed assets,
// olm.wasm, icons) so taube opens without a network. Navigations go to the
// network first and fall back to the cached shell; hashed assets never
// change, so they are served from the cache. Nothing under /api/ is cached,
// and only same-origin GETs are touched.
//
// Bump SHELL_VERSION when this file's caching rules change. New builds are
// picked up without it: every online start re-reads index.html, caches the
// assets it (and its scripts) name, and drops the ones it no longer names.

const SHELL_VERSION = 1;
const CACHE = `taube-shell-v${SHELL_VERSION}`;
const STATIC = ["/", "/manifest.webmanifest", "/icon.svg", "/icon-192.png", "/icon-512.png", "/icon-maskable.png"];

const sw = self as unknown as ServiceWorkerGlobalScope;

/** the /assets/… files a text (index.html, a script) refers to */
function assetsOf(text: string): string[] {
  const found = new Set<string>();
  for (const match of text.matchAll(/["'`](\/assets\/[A-Za-z0-9._-]+)["'`]/gu)) {
    if (match[1]) found.add(match[1]);
  }
  return [...found];
}

/** fetch (or reuse) one asset into the cache; its text if it is a script */
async function keepAsset(cache: Cache, url: string): Promise<string | null> {
  let response = await cache.match(url);
  if (!response) {
    const fresh = await fetch(url, { cache: "no-cache" });
    if (!fresh.ok) return null;
    await cache.put(url, fresh.clone());
    response = fresh;
  }
  return url.endsWith(".js") ? response.text() : null;
}

/** cache what `html` needs: its assets, and what those scripts load at
 *  run time (olm.wasm, lazy chunks); drop assets of older builds */
async function keepShell(cache: Cache, html: string): Promise<void> {
  const wanted = new Set(assetsOf(html));
  for (const url of [...wanted]) {
    const script = await keepAsset(cache, url).catch(() => null);
    if (script) for (const more of assetsOf(script)) wanted.add(more);
  }
  await Promise.all([...wanted].map((url) => keepAsset(cache, url).catch(() => null)));
  for (const request of await cache.keys()) {
    const path = new URL(request.url).pathname;
    if (path.startsWith("/assets/") && !wanted.has(path)) await cache.delete(request);
  }
}

async function cacheShell(): Promise<void> {
  const cache = await caches.open(CACHE);
  const response = await fetch("/", { cache: "no-cache" });
  if (!response.ok) throw new Error(`shell: ${response.status}`);
  const html = await response.clone().text();
  await cache.put("/", response);
  await Promise.all(
    STATIC.slice(1).map(async (url) => {
      try {
        const r = await fetch(url, { cache: "no-cache" });
        if (r.ok) await cache.put(url, r);
      } catch {
        // an icon missing offline is not worth failing the install
      }
    }),
  );
  await keepShell(cache, html);
}

sw.addEventListener("install", (event) => {
  event.waitUntil(cacheShell().then(() => sw.skipWaiting()));
});

sw.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) {
        if (key.startsWith("taube-shell-") && key !== CACHE) await caches.delete(key);
      }
      await sw.clients.claim();
    })(),
  );
});

async function handleNavigation(request: Request): Promise<Response> {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && response.headers.get("content-type")?.includes("text/html")) {
      const copy = response.clone();
      void copy.text().then(async (html) => {
        await cache.put("/", new Response(html, { headers: copy.headers }));
        await keepShell(cache, html);
      });
    }
    return response;
  } catch {
    const cached = await cache.match("/");
    return cached ?? new Response("taube is offline and has no copy of the app yet.", { status: 503 });
  }
}

async function immutableAsset(request: Request): Promise<Response> {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

async function networkFirst(request: Request): Promise<Response> {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch {
    const cached = await cache.match(request);
    if (cached) return cached;
    throw new Error("offline");
  }
}

sw.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== sw.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname === "/api") return;
  if (request.mode === "navigate") {
    event.respondWith(handleNavigation(request));
  } else if (url.pathname.startsWith("/assets/")) {
    event.respondWith(immutableAsset(request));
  } else if (STATIC.includes(url.pathname) || url.pathname.endsWith(".wasm")) {
    event.respondWith(networkFirst(request));
  }
});
