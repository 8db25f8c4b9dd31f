// Settings → Export / Import: the whole history as one encrypted file (the
// same file as `taube export` / `taube import`), with progress. The code
// that opens an export is shown once.
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import type { ArchiveProgress } from "../client/archive";
import { useClient } from "./context";
import { FormError } from "./dialog";
import { DownloadIcon } from "./icons";
import { Section } from "./panel";

const STEP_TEXT: Record<string, string> = {
  key: "Making the key from the code…",
  messages: "Messages",
  files: "Files",
  encrypt: "Encrypting",
  decrypt: "Decrypting",
};

interface Progress {
  step: string;
  done: number;
  total: number;
}

function ProgressLine({ progress }: { progress: Progress | null }): JSX.Element | null {
  if (!progress) return null;
  const label = STEP_TEXT[progress.step] ?? progress.step;
  return (
    <div class="archive-progress" role="status" data-testid="archive-progress" data-step={progress.step}>
      <span>{label}</span>
      <progress max={progress.total || 1} value={progress.done} aria-label={label} />
    </div>
  );
}

function useProgress(): [Progress | null, ArchiveProgress, (p: Progress | null) => void] {
  const [progress, setProgress] = useState<Progress | null>(null);
  return [progress, (step, done, total) => setProgress({ step, done, total }), setProgress];
}

export function ArchiveSection(): JSX.Element {
  return (
    <Section title="Export / Import" testid="archive-settings">
      <p class="muted">
        Take your history along: every chat, message and file in one encrypted file, to import on another device or under a new address. The
        command line reads the same file (<code>taube import</code>).
      </p>
      <ExportPart />
      <ImportPart />
    </Section>
  );
}

function ExportPart(): JSX.Element {
  const client = useClient();
  const [progress, onProgress, setProgress] = useProgress();
  const [result, setResult] = useState<{ url: string; name: string; code: string } | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function run(): Promise<void> {
    setError(null);
    setResult(null);
    try {
      const { file, code } = await client.archives.export(onProgress);
      const name = `taube-history-${new Date().toISOString().slice(0, 10)}.taube`;
      const url = URL.createObjectURL(file);
      setResult({ url, name, code });
      const link = document.createElement("a");
      link.href = url;
      link.download = name;
      link.click();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setProgress(null);
    }
  }

  return (
    <div class="archive-part">
      <button type="button" class="button button--ghost button--wide" disabled={progress !== null} onClick={() => void run()} data-testid="archive-export">
        <DownloadIcon size={18} /> Export history
      </button>
      <ProgressLine progress={progress} />
      <FormError error={error} />
      {result && (
        <div class="archive-result" data-testid="archive-export-done">
          <p>
            Saved as <a href={result.url} download={result.name} data-testid="archive-download">{result.name}</a>. The code that opens it, shown
            only now:
          </p>
          <p class="archive-code" data-testid="archive-code">
            {result.code}
          </p>
          <p class="field__hint">Keep the code apart from the file: whoever has both can read your history.</p>
        </div>
      )}
    </div>
  );
}

function ImportPart(): JSX.Element {
  const client = useClient();
  const [file, setFile] = useState<File | null>(null);
  const [code, setCode] = useState("");
  const [progress, onProgress, setProgress] = useProgress();
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<{ messages: number; leftOut: string[] } | null>(null);

  async function run(): Promise<void> {
    if (!file) return;
    setError(null);
    setDone(null);
    try {
      setDone(await client.archives.import(file, code, onProgress));
      setCode("");
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setProgress(null);
    }
  }

  return (
    <form
      class="form archive-part"
      onSubmit={(e) => {
        e.preventDefault();
        void run();
      }}
    >
      <label class="field">
        <span class="field__label">Import an archive</span>
        <input class="input" type="file" accept=".taube,application/octet-stream" onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)} data-testid="archive-file" />
      </label>
      <label class="field">
        <span class="field__label">Its code</span>
        <input class="input input--mono" type="text" autoComplete="off" value={code} onInput={(e) => setCode(e.currentTarget.value)} data-testid="archive-code-input" />
      </label>
      <ProgressLine progress={progress} />
      <FormError error={error} testid="archive-error" />
      {done && (
        <div class="archive-result" role="status" data-testid="archive-import-done">
          <p>{done.messages === 1 ? "1 message imported." : `${done.messages} messages imported.`} The chats are in your chat list.</p>
          {done.leftOut.map((note) => (
            <p key={note} class="field__hint">
              Not imported: {note}.
            </p>
          ))}
        </div>
      )}
      <button type="submit" class="button button--wide" disabled={!file || !code.trim() || progress !== null} data-testid="archive-import">
        Import
      </button>
    </form>
  );
}
