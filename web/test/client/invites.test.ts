// Invite links in the browser match the SDK's (taube.client.invites): the
// same fingerprint, id and proof for the same inputs (values computed with
// the Python package), and damaged links are refused. The whole exchange
// between the two clients runs in tests/web/test_newcomer_browser.py.
import { describe, expect, it } from "vitest";
import { fingerprint, InviteError, inviteId, inviteProof, inviteUrl, parseInvite } from "../../src/client/invites";

const KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const SECRET = "AAECAwQFBgcICQoLDA0ODw";

describe("invite links", () => {
  it("derive what the SDK derives", async () => {
    expect(await fingerprint(KEY)).toBe("If4x36FUomFia_hUBG_SJw");
    expect(await inviteId(SECRET)).toBe("GgsP1bh1cgvpRbQb3OiFMxybMDdkpG25BNHQaLLGLBk");
    expect(await inviteProof(SECRET, "a@example.org", KEY, "b@example.org", "kb")).toBe(
      "Dhq6lzLTvCeWBaYq9rf21aOXZI_MadHCs9iuuSoLuBo",
    );
  });

  it("round-trip, the name included", () => {
    const link = { server: "https://chat.example.org", inviter: "ana@example.org", fingerprint: "If4x36FUomFia_hUBG_SJw", secret: SECRET, name: "Ana Lima/Ä" };
    const url = inviteUrl(link);
    expect(url.startsWith("https://chat.example.org/#/invite/ana@example.org/If4x36FUomFia_hUBG_SJw/")).toBe(true);
    expect(parseInvite(url)).toEqual(link);
    expect(parseInvite(url.slice(url.indexOf("#")), "https://chat.example.org")).toEqual(link);
  });

  it("refuse damaged links", () => {
    for (const bad of [
      "https://chat.example.org/#/join/x",
      `https://chat.example.org/#/invite/ana@example.org/short/${SECRET}`,
      `https://chat.example.org/#/invite/not-an-address/If4x36FUomFia_hUBG_SJw/${SECRET}`,
      "https://chat.example.org/#/invite/ana@example.org",
    ]) {
      expect(() => parseInvite(bad)).toThrow(InviteError);
    }
  });
});
