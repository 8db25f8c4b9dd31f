// The portable archive's file format in the browser (the SDK's
// taube.client.archive): tar with pax names, sealed under a code; a wrong
// code or a damaged file is an ArchiveError. (SDK ↔ browser both ways:
// tests/web/test_archive_browser.py.)
import { describe, expect, it } from "vitest";
import { ArchiveError, MAGIC, openArchive, sealArchive, tarRead, tarWrite } from "../../src/client/archive";
import { utf8 } from "../../src/crypto/base64";

const CHEAP = { time_cost: 1, memory_cost: 64, parallelism: 1 };

describe("tar", () => {
  it("reads back what it wrote, long and non-ASCII names included", () => {
    const files = new Map<string, Uint8Array>([
      ["history.json", utf8('{"messages": []}')],
      ["attachments/Grüße aus Köln.pdf", new Uint8Array(1000).fill(7)],
      [`attachments/${"x".repeat(150)}.bin`, new Uint8Array(0)],
      ["attachments/exactly-512", new Uint8Array(512).fill(1)],
    ]);
    const back = tarRead(tarWrite(files));
    expect([...back.keys()]).toEqual([...files.keys()]);
    for (const [name, data] of files) expect(back.get(name)).toEqual(data);
  });

  it("refuses a stream cut short", () => {
    const tar = tarWrite(new Map([["a", new Uint8Array(2000)]]));
    expect(() => tarRead(tar.subarray(0, 1024))).toThrow(ArchiveError);
  });
});

describe("archive", () => {
  it("opens with its code, and only with it", async () => {
    const files = new Map([["history.json", utf8("{}")]]);
    const steps = new Set<string>();
    const { file, code } = await sealArchive(files, (step) => steps.add(step), CHEAP);
    expect(new TextDecoder().decode(await file.slice(0, MAGIC.length).arrayBuffer())).toBe(MAGIC);
    expect((await openArchive(file, code)).get("history.json")).toEqual(utf8("{}"));
    expect(steps).toEqual(new Set(["key", "encrypt"]));
    const other = (await sealArchive(files, undefined, CHEAP)).code;
    await expect(openArchive(file, other)).rejects.toThrow(/does not open/);
    await expect(openArchive(new Blob(["hello"]), code)).rejects.toThrow(/not a taube archive/);
    const cut = file.slice(0, file.size - 5);
    await expect(openArchive(cut, code)).rejects.toThrow(ArchiveError);
  });

  it("refuses a header asking for too much work", async () => {
    const header = JSON.stringify({ v: 1, time_cost: 99, memory_cost: 64, parallelism: 1, salt: "AAAAAAAAAAAAAAAAAAAAAA", sha256: "" });
    const file = new Blob([MAGIC, header, "\n", "x"]);
    await expect(openArchive(file, "0000-0000-0000-0000-0000-0000")).rejects.toThrow(/more than this device gives/);
  });
});
