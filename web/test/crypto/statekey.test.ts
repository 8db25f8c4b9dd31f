import { describe, expect, it } from "vitest";
import { utf8 } from "../../src/crypto/base64";
import { keyIdOf, newStateKey, sealState, unsealState } from "../../src/crypto/statekey";
import { CONVERSATION, OTHER_CONVERSATION } from "./helpers";

describe("state keys", () => {
  it("seals title and avatar to a conversation and field", async () => {
    const { id, key } = newStateKey();
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(key).toHaveLength(32);
    const sealed = await sealState(id, key, CONVERSATION, "title", utf8("Team"));
    expect(sealed).toHaveLength(8 + 12 + 4 + 16);
    expect(keyIdOf(sealed)).toBe(id);
    expect(await unsealState(key, CONVERSATION, "title", sealed)).toEqual(utf8("Team"));
    expect(await unsealState(key, CONVERSATION, "avatar", sealed)).toBeNull();
    expect(await unsealState(key, OTHER_CONVERSATION, "title", sealed)).toBeNull();
    expect(await unsealState(newStateKey().key, CONVERSATION, "title", sealed)).toBeNull();
    expect(await unsealState(key, CONVERSATION, "title", sealed.slice(0, 20))).toBeNull();
    expect(await unsealState(new Uint8Array(5), CONVERSATION, "title", sealed)).toBeNull();
    const changed = sealed.slice();
    changed[25] = changed[25]! ^ 1;
    expect(await unsealState(key, CONVERSATION, "title", changed)).toBeNull();
    await expect(sealState("abc", key, CONVERSATION, "title", utf8("x"))).rejects.toThrow();
  });
});
