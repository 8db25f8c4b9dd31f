// Signed conversation state: the rules of taube.proto.state, the same on
// every client and the server. A conversation is trusted only as far as
// this admits its chain (signatures checked by the caller, chain.ts).
import { b64encode } from "../crypto/base64";
import { canonicalJson } from "../crypto/canonical";
import type { Role, StateEvent } from "../gen/proto";

export const MAX_GROUP_MEMBERS = 10_000;

const RANK: Record<Role, number> = { owner: 3, admin: 2, member: 1 };

export class RuleError extends Error {
  constructor(
    readonly code: "forbidden" | "conflict",
    message: string,
  ) {
    super(message);
  }
}

export interface ConversationState {
  conversation: string;
  kind: "direct" | "group";
  creator: string;
  members: Record<string, Role>;
  timerSeconds: number;
  depth: number;
  head: string;
}

/** The hash the next event names as `prev` (signature included). */
export async function eventHash(event: StateEvent): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", canonicalJson(event, ""));
  return b64encode(new Uint8Array(digest));
}

export async function initialState(event: StateEvent): Promise<ConversationState> {
  if (event.depth !== 0 || event.prev !== "" || event.content.type !== "create") {
    throw new RuleError("forbidden", "a conversation starts with a create event at depth 0");
  }
  return {
    conversation: event.conversation,
    kind: event.content.kind,
    creator: event.sender,
    members: { [event.sender]: "owner" },
    timerSeconds: 0,
    depth: 0,
    head: await eventHash(event),
  };
}

export async function applyEvent(state: ConversationState, event: StateEvent): Promise<ConversationState> {
  if (event.conversation !== state.conversation) throw new RuleError("forbidden", "event for another conversation");
  if (event.depth !== state.depth + 1 || event.prev !== state.head) {
    throw new RuleError("conflict", "event does not follow the current state");
  }
  const senderRole = state.members[event.sender];
  if (senderRole === undefined) throw new RuleError("forbidden", "only members change a conversation");
  const next: ConversationState = { ...state, members: { ...state.members } };
  const content = event.content;
  switch (content.type) {
    case "create":
      throw new RuleError("forbidden", "a conversation is created once");
    case "member":
      applyMember(next, event.sender, senderRole, content.target, content.membership, content.role ?? "member");
      break;
    case "title":
    case "avatar":
    case "timer":
      if (state.kind === "group" && RANK[senderRole] < RANK.admin) {
        throw new RuleError("forbidden", "only admins change a group's settings");
      }
      if (content.type === "timer") next.timerSeconds = content.seconds;
      break;
  }
  next.depth = event.depth;
  next.head = await eventHash(event);
  return next;
}

function applyMember(
  state: ConversationState,
  sender: string,
  senderRole: Role,
  target: string,
  membership: "join" | "leave",
  role: Role,
): void {
  const targetRole = state.members[target];
  if (membership === "leave") {
    if (targetRole === undefined) throw new RuleError("forbidden", "not a member");
    if (target !== sender) {
      if (state.kind === "direct") throw new RuleError("forbidden", "nobody removes the other side of a direct chat");
      if (RANK[senderRole] <= RANK[targetRole]) throw new RuleError("forbidden", "only a higher role removes a member");
    }
    delete state.members[target];
    return;
  }
  if (RANK[role] > RANK[senderRole]) throw new RuleError("forbidden", "cannot grant a role above one's own");
  if (targetRole === undefined) {
    if (state.kind === "direct") {
      if (sender !== state.creator || Object.keys(state.members).length >= 2) {
        throw new RuleError("forbidden", "a direct chat has two members");
      }
    } else if (RANK[senderRole] < RANK.admin) {
      throw new RuleError("forbidden", "only admins add members");
    }
    if (Object.keys(state.members).length >= MAX_GROUP_MEMBERS) throw new RuleError("forbidden", "the group is full");
  } else {
    if (target === sender) throw new RuleError("forbidden", "cannot change one's own role");
    if (senderRole !== "owner" && RANK[senderRole] <= RANK[targetRole]) {
      throw new RuleError("forbidden", "only a higher role changes a role");
    }
  }
  state.members[target] = role;
}

export function rank(role: Role | null | undefined): number {
  return role ? RANK[role] : 0;
}
