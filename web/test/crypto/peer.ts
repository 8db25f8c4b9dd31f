// A live Python peer for the interop tests: tests/web/interop_peer.py under
// the project's venv, spoken to in JSON lines over stdin/stdout. The tests
// that use it skip (with the reason in their name) when the venv is missing.

// Node's modules, typed as far as used here (the web project has no @types/node).
interface ChildProcess {
  stdin: { write(data: string): boolean; end(): void };
  stdout: { on(event: "data", f: (chunk: { toString(): string }) => void): void };
  stderr: { on(event: "data", f: (chunk: { toString(): string }) => void): void };
  on(event: "exit", f: (code: number | null) => void): void;
  kill(): boolean;
}
const { spawn } = (await import("node:child_process" as string)) as {
  spawn(cmd: string, args: string[], opts: { cwd: string; env: Record<string, string | undefined>; stdio: string[] }): ChildProcess;
};
const { existsSync } = (await import("node:fs" as string)) as { existsSync(path: string): boolean };
const { fileURLToPath } = (await import("node:url" as string)) as { fileURLToPath(url: URL): string };

const env = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env;

/** The repository root (web/test/crypto → ../../..). */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const PYTHON = env.TAUBE_PYTHON ?? `${ROOT}.venv/bin/python`;
export const PEER_SCRIPT = `${ROOT}tests/web/interop_peer.py`;
export const HAVE_PYTHON = existsSync(PYTHON) && existsSync(PEER_SCRIPT);
/** Skip the interop tests without Python, except in CI (TAUBE_REQUIRE_SERVICES=1), where they fail. */
export const SKIP_INTEROP = !HAVE_PYTHON && env.TAUBE_REQUIRE_SERVICES !== "1";
export const SKIP_REASON = HAVE_PYTHON ? "" : ` (skipped: no Python venv at ${PYTHON}; run scripts/test or set TAUBE_PYTHON)`;

export interface PeerError {
  type: string;
  message: string;
  code?: string;
}

export class PeerFailure extends Error {
  readonly type: string;
  readonly code: string | undefined;
  constructor(op: string, e: PeerError) {
    super(`python ${op}: ${e.type}: ${e.message}`);
    this.type = e.type;
    this.code = e.code;
  }
}

export class PythonPeer {
  #child: ChildProcess;
  #buffer = "";
  #next = 1;
  #pending = new Map<number, { op: string; resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #stderr = "";

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.stdout.on("data", (chunk) => this.#receive(chunk.toString()));
    child.stderr.on("data", (chunk) => {
      this.#stderr += chunk.toString();
    });
    child.on("exit", (code) => {
      for (const p of this.#pending.values()) p.reject(new Error(`python peer exited (${code}): ${this.#stderr}`));
      this.#pending.clear();
    });
  }

  static start(): PythonPeer {
    const child = spawn(PYTHON, [PEER_SCRIPT], {
      cwd: ROOT,
      env: { ...env, PYTHONPATH: `${ROOT}src`, PYTHONDONTWRITEBYTECODE: "1" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    return new PythonPeer(child);
  }

  #receive(text: string): void {
    this.#buffer += text;
    let nl: number;
    while ((nl = this.#buffer.indexOf("\n")) >= 0) {
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + 1);
      const answer = JSON.parse(line) as { id: number; ok?: unknown; error?: PeerError };
      const pending = this.#pending.get(answer.id);
      if (pending === undefined) continue;
      this.#pending.delete(answer.id);
      if (answer.error !== undefined) pending.reject(new PeerFailure(pending.op, answer.error));
      else pending.resolve(answer.ok);
    }
  }

  /** Run one operation of interop_peer.py; rejects with a PeerFailure on a Python error. */
  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { op, resolve: resolve as (v: unknown) => void, reject });
      this.#child.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }

  /** The Python error type an operation fails with ("" if it succeeds). */
  async failure(op: string, args: Record<string, unknown> = {}): Promise<string> {
    try {
      await this.call(op, args);
      return "";
    } catch (err) {
      if (err instanceof PeerFailure) return err.type;
      throw err;
    }
  }

  close(): void {
    this.#child.stdin.end();
  }
}
