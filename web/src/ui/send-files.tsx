// Sending picked, dropped or pasted files: a single photo goes through the
// photo editor first, everything else is sent as it is.
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import type { ConversationId } from "../client/model";
import { replyTo, useClient } from "./context";
import { kindOfFile } from "./format";
import { PhotoEditor } from "./photo-editor";

export interface FileSender {
  send(files: File[]): void;
  dialog: JSX.Element | null;
}

function fileName(file: File): string {
  if (file.name) return file.name;
  const ext = file.type.split("/")[1]?.replace("jpeg", "jpg") ?? "bin";
  return `pasted-${new Date().toISOString().replace(/[:.]/gu, "-")}.${ext}`;
}

export function useFileSender(conversation: ConversationId): FileSender {
  const client = useClient();
  const [editing, setEditing] = useState<File | null>(null);

  function sendRaw(file: Blob, name: string, caption?: string): void {
    replyTo.value = null;
    void client.sendFile(conversation, file, name, caption || undefined, kindOfFile(file)).catch(() => undefined);
  }

  return {
    send(files: File[]) {
      const first = files[0];
      if (files.length === 1 && first && kindOfFile(first) === "image" && first.type !== "image/gif") {
        setEditing(first);
        return;
      }
      for (const f of files) sendRaw(f, fileName(f));
    },
    dialog: editing ? (
      <PhotoEditor
        file={editing}
        onCancel={() => setEditing(null)}
        onSend={(blob, caption) => {
          const base = fileName(editing).replace(/\.[^.]+$/u, "");
          const ext = blob.type === "image/png" ? "png" : "jpg";
          setEditing(null);
          sendRaw(blob, `${base}.${ext}`, caption);
        }}
      />
    ) : null,
  };
}
