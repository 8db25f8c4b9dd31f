// Conversation chains as this device trusts them: every event's signature
// checked against its sender's pinned identity key, every rule applied from
// the create event on (the port of taube.client.conversations).
import { verifySignature } from "../crypto/keys";
import { DOMAIN, type StateContent, type StateEvent } from "../gen/proto";
import type { Keys } from "./keys";
import { applyEvent, initialState, RuleError, type ConversationState } from "./state";

export class ChainError extends Error {}

export async function checkSignature(keys: Keys, event: StateEvent): Promise<void> {
  let pinned = keys.pinned(event.sender);
  if (pinned === undefined) {
    await keys.refresh([event.sender]);
    pinned = keys.pinned(event.sender);
  }
  if (pinned === undefined) throw new ChainError(`no identity key for ${event.sender}`);
  try {
    await verifySignature(DOMAIN.state, event, pinned.identityKey, event.signature);
  } catch (e) {
    throw new ChainError(`state event by ${event.sender} does not verify: ${(e as Error).message}`);
  }
}

export async function verifyChain(keys: Keys, events: StateEvent[]): Promise<ConversationState> {
  if (events.length === 0) throw new ChainError("empty state chain");
  let state: ConversationState | null = null;
  for (const event of events) {
    await checkSignature(keys, event);
    try {
      state = state === null ? await initialState(event) : await applyEvent(state, event);
    } catch (e) {
      if (e instanceof RuleError) throw new ChainError(`state event breaks the rules: ${e.message}`);
      throw e;
    }
  }
  return state as ConversationState;
}

export async function signEvent(
  keys: Keys,
  conversation: string,
  depth: number,
  prev: string,
  content: StateContent,
  ts: number,
): Promise<StateEvent> {
  const unsigned = { conversation, depth, prev, sender: keys.user, ts, content, signature: "" };
  return { ...unsigned, signature: await keys.identity.sign(DOMAIN.state, unsigned) };
}

/** The create event and the events adding the first members (roles left at
 * their default are left out: the signature covers the wire form). */
export async function newChain(
  keys: Keys,
  conversation: string,
  kind: "direct" | "group",
  members: string[],
  ts: number,
): Promise<StateEvent[]> {
  const events = [await signEvent(keys, conversation, 0, "", { type: "create", kind }, ts)];
  let state = await initialState(events[0]!);
  for (const member of members) {
    const event = await signEvent(
      keys,
      conversation,
      state.depth + 1,
      state.head,
      { type: "member", target: member, membership: "join" },
      ts,
    );
    state = await applyEvent(state, event);
    events.push(event);
  }
  return events;
}
