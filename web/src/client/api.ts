// The HTTP half of the protocol (DESIGN §7): JSON bodies, bearer token.
import { API_PREFIX, type ErrorBody } from "../gen/proto";

/** The server said no (`code` from ERROR_CODES) or could not be reached. */
export class ServerError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly retryAfter: number | null = null,
  ) {
    super(message);
  }

  /** Worth trying again later (network, overload, rate limit). */
  get transient(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

export class Api {
  token: string | null = null;

  constructor(readonly base: string = location.origin) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.raw(method, path, body === undefined ? undefined : JSON.stringify(body), "application/json")) as T;
  }

  /** Upload raw bytes (blobs); `onProgress` sees bytes sent. */
  upload<T>(path: string, data: Blob, onProgress?: (done: number, total: number) => void): Promise<T> {
    // fetch has no upload progress: XMLHttpRequest does
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", this.base + API_PREFIX + path);
      if (this.token) xhr.setRequestHeader("Authorization", `Bearer ${this.token}`);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.onprogress = (e) => onProgress?.(e.loaded, e.total || data.size);
      xhr.onload = () => {
        let parsed: unknown = null;
        try {
          parsed = JSON.parse(xhr.responseText);
        } catch {
          // not JSON: reported below
        }
        if (xhr.status >= 200 && xhr.status < 300) resolve(parsed as T);
        else reject(errorOf(xhr.status, parsed));
      };
      xhr.onerror = () => reject(new ServerError("unavailable", "the server cannot be reached", 0));
      xhr.send(data);
    });
  }

  /** Download raw bytes with progress. */
  async download(path: string, onProgress?: (done: number, total: number) => void): Promise<Uint8Array> {
    let response: Response;
    try {
      response = await fetch(this.base + API_PREFIX + path, { headers: this.headers() });
    } catch {
      throw new ServerError("unavailable", "the server cannot be reached", 0);
    }
    if (!response.ok) throw errorOf(response.status, await response.json().catch(() => null));
    const total = Number(response.headers.get("Content-Length") ?? 0);
    if (!response.body) return new Uint8Array(await response.arrayBuffer());
    const reader = response.body.getReader();
    const parts: Uint8Array[] = [];
    let done = 0;
    for (;;) {
      const { value, done: finished } = await reader.read();
      if (finished) break;
      parts.push(value);
      done += value.length;
      onProgress?.(done, total || done);
    }
    const out = new Uint8Array(done);
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  private headers(contentType?: string): Record<string, string> {
    const headers: Record<string, string> = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (contentType) headers["Content-Type"] = contentType;
    return headers;
  }

  private async raw(method: string, path: string, body: string | undefined, contentType: string): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(this.base + API_PREFIX + path, {
        method,
        headers: this.headers(body === undefined ? undefined : contentType),
        body,
      });
    } catch {
      throw new ServerError("unavailable", "the server cannot be reached", 0);
    }
    if (response.status === 204) return null;
    const parsed: unknown = await response.json().catch(() => null);
    if (!response.ok) throw errorOf(response.status, parsed);
    return parsed;
  }
}

function errorOf(status: number, body: unknown): ServerError {
  const error = body as Partial<ErrorBody> | null;
  return new ServerError(
    error?.error ?? "internal",
    error?.message ?? `the server answered ${status}`,
    status,
    error?.retry_after ?? null,
  );
}
