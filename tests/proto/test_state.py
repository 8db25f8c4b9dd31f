"""The state rules of ``taube.proto.state``, one test per rule of its docstring.

Signatures are not checked by these rules, so events carry a dummy one.
"""

from __future__ import annotations

import copy
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taube.proto import state as state_module
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import ConversationId, UserId
from taube.proto.state import (
    Avatar,
    Content,
    ConversationState,
    Create,
    Kind,
    Member,
    Role,
    StateEvent,
    Timer,
    Title,
    apply_event,
    initial_state,
    replay,
)

CONVERSATION = ConversationId("C" * 22)
OTHER_CONVERSATION = ConversationId("D" * 22)
SIGNATURE = "A" * 86

ALICE = UserId("alice@example.org")
BOB = UserId("bob@example.org")
CAROL = UserId("carol@example.org")
DAVE = UserId("dave@example.org")
ERIN = UserId("erin@example.org")


def event(
    sender: UserId,
    content: Content,
    *,
    depth: int = 0,
    prev: str = "",
    conversation: ConversationId = CONVERSATION,
) -> StateEvent:
    return StateEvent(
        conversation=conversation,
        depth=depth,
        prev=prev,
        sender=sender,
        ts=1_700_000_000_000 + depth,
        content=content,
        signature=SIGNATURE,
    )


def join(target: UserId, role: Role = Role.MEMBER) -> Member:
    return Member(target=target, membership="join", role=role)


def leave(target: UserId) -> Member:
    return Member(target=target, membership="leave")


class Chain:
    """A conversation built event by event, as a client would."""

    def __init__(self, kind: Kind = Kind.GROUP, creator: UserId = ALICE) -> None:
        first = event(creator, Create(kind=kind))
        self.events = [first]
        self.state = initial_state(first)

    def next(self, sender: UserId, content: Content) -> StateEvent:
        return event(sender, content, depth=self.state.depth + 1, prev=self.state.head)

    def add(self, sender: UserId, content: Content) -> ConversationState:
        """Apply an event that the rules must admit."""
        ev = self.next(sender, content)
        self.state = apply_event(self.state, ev)
        self.events.append(ev)
        return self.state

    def refused(self, sender: UserId, content: Content) -> ProtocolError:
        """Apply an event that the rules must refuse; the state stays as it was."""
        before = copy.deepcopy(self.state)
        with pytest.raises(ProtocolError) as info:
            apply_event(self.state, self.next(sender, content))
        assert self.state == before
        return info.value


def group(**roles: Role) -> Chain:
    """A group created by alice with ``bob=Role.ADMIN`` etc. added by her."""
    chain = Chain(Kind.GROUP)
    for name, role in roles.items():
        chain.add(ALICE, join(UserId(f"{name}@example.org"), role))
    return chain


def direct() -> Chain:
    chain = Chain(Kind.DIRECT)
    chain.add(ALICE, join(BOB))
    return chain


# ---------------------------------------------------------------- the first event is create


def test_create_makes_the_sender_the_owner() -> None:
    chain = Chain(Kind.GROUP)
    assert chain.state.members == {ALICE: Role.OWNER}
    assert chain.state.creator == ALICE
    assert chain.state.kind is Kind.GROUP
    assert chain.state.depth == 0
    assert chain.state.head == chain.events[0].event_hash()


@pytest.mark.parametrize(
    "first",
    [
        event(ALICE, join(BOB)),  # not a create
        event(ALICE, Title(sealed=b"t")),
        event(ALICE, Create(kind=Kind.GROUP), depth=1),  # not at depth 0
        event(ALICE, Create(kind=Kind.GROUP), prev="x"),  # names a previous event
    ],
)
def test_the_first_event_is_a_create_at_depth_zero(first: StateEvent) -> None:
    with pytest.raises(ProtocolError) as info:
        initial_state(first)
    assert info.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(ProtocolError):
        replay([first])


def test_create_only_once() -> None:
    chain = group()
    error = chain.refused(ALICE, Create(kind=Kind.GROUP))
    assert error.code is ErrorCode.FORBIDDEN


def test_an_empty_chain_is_refused() -> None:
    with pytest.raises(ProtocolError) as info:
        replay([])
    assert info.value.code is ErrorCode.FORBIDDEN


# ---------------------------------------------------------------- senders are members


@pytest.mark.parametrize(
    "content", [join(CAROL), leave(ALICE), Title(sealed=b"x"), Timer(seconds=5)]
)
def test_only_members_send_events(content: Content) -> None:
    chain = group(bob=Role.MEMBER)
    error = chain.refused(DAVE, content)
    assert error.code is ErrorCode.FORBIDDEN


def test_a_member_who_left_sends_no_more_events() -> None:
    chain = group(bob=Role.ADMIN)
    chain.add(BOB, leave(BOB))
    assert chain.refused(BOB, join(BOB)).code is ErrorCode.FORBIDDEN
    assert chain.refused(BOB, join(CAROL)).code is ErrorCode.FORBIDDEN


# ---------------------------------------------------------------- prev and depth chain


def test_prev_and_depth_follow_the_chain() -> None:
    chain = group()
    good = chain.next(ALICE, join(BOB))
    for bad in (
        event(ALICE, join(BOB), depth=good.depth, prev=chain.events[0].prev),
        event(ALICE, join(BOB), depth=good.depth, prev="A" * 43),
        event(ALICE, join(BOB), depth=good.depth + 1, prev=good.prev),
        event(ALICE, join(BOB), depth=good.depth - 1, prev=good.prev),
    ):
        with pytest.raises(ProtocolError) as info:
            apply_event(chain.state, bad)
        assert info.value.code is ErrorCode.CONFLICT
    assert apply_event(chain.state, good).depth == 1


def test_an_event_cannot_be_applied_twice() -> None:
    chain = group()
    ev = chain.next(ALICE, join(BOB))
    after = apply_event(chain.state, ev)
    with pytest.raises(ProtocolError) as info:
        apply_event(after, ev)
    assert info.value.code is ErrorCode.CONFLICT


def test_the_hash_covers_the_signature() -> None:
    chain = group()
    ev = chain.next(ALICE, join(BOB))
    resigned = StateEvent(
        conversation=ev.conversation,
        depth=ev.depth,
        prev=ev.prev,
        sender=ev.sender,
        ts=ev.ts,
        content=ev.content,
        signature="B" * 86,
    )
    assert ev.event_hash() != resigned.event_hash()
    assert ev.signed_bytes() == resigned.signed_bytes()


def test_events_of_another_conversation_are_refused() -> None:
    chain = group()
    good = chain.next(ALICE, join(BOB))
    bad = event(ALICE, join(BOB), depth=good.depth, prev=good.prev, conversation=OTHER_CONVERSATION)
    with pytest.raises(ProtocolError) as info:
        apply_event(chain.state, bad)
    assert info.value.code is ErrorCode.FORBIDDEN


# ---------------------------------------------------------------- adding members takes an admin


def test_owner_and_admins_add_members() -> None:
    chain = group(bob=Role.ADMIN)
    chain.add(BOB, join(CAROL))
    chain.add(ALICE, join(DAVE))
    assert chain.state.members == {
        ALICE: Role.OWNER,
        BOB: Role.ADMIN,
        CAROL: Role.MEMBER,
        DAVE: Role.MEMBER,
    }


def test_members_do_not_add_members() -> None:
    chain = group(bob=Role.MEMBER)
    assert chain.refused(BOB, join(CAROL)).code is ErrorCode.FORBIDDEN


def test_the_new_role_ranks_no_higher_than_the_senders() -> None:
    chain = group(bob=Role.ADMIN)
    assert chain.refused(BOB, join(CAROL, Role.OWNER)).code is ErrorCode.FORBIDDEN
    chain.add(BOB, join(CAROL, Role.ADMIN))
    chain.add(ALICE, join(DAVE, Role.OWNER))
    assert chain.state.members[CAROL] is Role.ADMIN
    assert chain.state.members[DAVE] is Role.OWNER


def test_a_group_is_full_at_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "MAX_GROUP_MEMBERS", 3)
    chain = group(bob=Role.MEMBER, carol=Role.MEMBER)
    assert chain.refused(ALICE, join(DAVE)).code is ErrorCode.FORBIDDEN
    chain.add(ALICE, join(BOB, Role.ADMIN))  # a role change is not an addition


# ---------------------------------------------------------------- role changes follow the ranks


def test_roles_rank_owner_admin_member() -> None:
    assert Role.OWNER.rank > Role.ADMIN.rank > Role.MEMBER.rank


def test_an_admin_promotes_and_demotes_members() -> None:
    chain = group(bob=Role.ADMIN, carol=Role.MEMBER)
    chain.add(BOB, join(CAROL, Role.ADMIN))
    assert chain.state.members[CAROL] is Role.ADMIN


def test_an_admin_does_not_change_another_admin() -> None:
    chain = group(bob=Role.ADMIN, carol=Role.ADMIN)
    assert chain.refused(BOB, join(CAROL, Role.MEMBER)).code is ErrorCode.FORBIDDEN


def test_an_admin_does_not_grant_owner() -> None:
    chain = group(bob=Role.ADMIN, carol=Role.MEMBER)
    assert chain.refused(BOB, join(CAROL, Role.OWNER)).code is ErrorCode.FORBIDDEN


def test_an_owner_changes_any_role_even_another_owners() -> None:
    chain = group(bob=Role.OWNER, carol=Role.ADMIN)
    chain.add(ALICE, join(BOB, Role.MEMBER))
    chain.add(ALICE, join(CAROL, Role.OWNER))
    assert chain.state.members[BOB] is Role.MEMBER
    assert chain.state.members[CAROL] is Role.OWNER


def test_nobody_changes_their_own_role() -> None:
    chain = group(bob=Role.ADMIN)
    assert chain.refused(BOB, join(BOB, Role.MEMBER)).code is ErrorCode.FORBIDDEN
    assert chain.refused(ALICE, join(ALICE, Role.ADMIN)).code is ErrorCode.FORBIDDEN


def test_a_member_changes_no_roles() -> None:
    chain = group(bob=Role.MEMBER, carol=Role.MEMBER)
    assert chain.refused(BOB, join(CAROL, Role.MEMBER)).code is ErrorCode.FORBIDDEN


# ---------------------------------------------------------------- leaving and removing


@pytest.mark.parametrize("role", list(Role))
def test_anyone_may_leave(role: Role) -> None:
    chain = group(bob=role)
    chain.add(BOB, leave(BOB))
    assert BOB not in chain.state.members


def test_the_owner_may_leave_too() -> None:
    chain = group(bob=Role.MEMBER)
    chain.add(ALICE, leave(ALICE))
    assert chain.state.members == {BOB: Role.MEMBER}


def test_removing_someone_takes_a_higher_role() -> None:
    chain = group(bob=Role.ADMIN, carol=Role.ADMIN, dave=Role.MEMBER, erin=Role.OWNER)
    assert chain.refused(BOB, leave(CAROL)).code is ErrorCode.FORBIDDEN  # same rank
    assert chain.refused(DAVE, leave(BOB)).code is ErrorCode.FORBIDDEN  # lower rank
    assert chain.refused(ALICE, leave(ERIN)).code is ErrorCode.FORBIDDEN  # owner vs owner
    chain.add(BOB, leave(DAVE))
    chain.add(ALICE, leave(CAROL))
    assert chain.state.members == {ALICE: Role.OWNER, BOB: Role.ADMIN, ERIN: Role.OWNER}


def test_removing_a_non_member_is_refused() -> None:
    chain = group(bob=Role.MEMBER)
    assert chain.refused(ALICE, leave(CAROL)).code is ErrorCode.FORBIDDEN


def test_a_removed_member_may_be_added_again() -> None:
    chain = group(bob=Role.MEMBER)
    chain.add(ALICE, leave(BOB))
    chain.add(ALICE, join(BOB))
    assert chain.state.members[BOB] is Role.MEMBER


# ---------------------------------------------------------------- direct chats


def test_a_direct_chat_has_its_creator_and_one_other() -> None:
    chain = direct()
    assert chain.state.members == {ALICE: Role.OWNER, BOB: Role.MEMBER}
    assert chain.refused(ALICE, join(CAROL)).code is ErrorCode.FORBIDDEN


def test_only_the_creator_adds_the_other_side() -> None:
    chain = direct()
    chain.add(BOB, leave(BOB))
    chain.add(ALICE, join(CAROL))
    chain.add(CAROL, leave(CAROL))
    assert chain.state.members == {ALICE: Role.OWNER}
    chain2 = direct()
    chain2.add(ALICE, leave(ALICE))
    assert chain2.refused(BOB, join(CAROL)).code is ErrorCode.FORBIDDEN


def test_nobody_removes_the_other_side_of_a_direct_chat() -> None:
    chain = direct()
    assert chain.refused(ALICE, leave(BOB)).code is ErrorCode.FORBIDDEN
    assert chain.refused(BOB, leave(ALICE)).code is ErrorCode.FORBIDDEN
    chain.add(BOB, leave(BOB))  # but either may leave
    assert chain.state.members == {ALICE: Role.OWNER}


# ---------------------------------------------------------------- settings


SETTINGS: list[Content] = [Title(sealed=b"sealed title"), Avatar(sealed=b"ref"), Timer(seconds=60)]


@pytest.mark.parametrize("content", SETTINGS, ids=lambda c: type(c).__name__)
def test_settings_take_an_admin_in_a_group(content: Content) -> None:
    chain = group(bob=Role.ADMIN, carol=Role.MEMBER)
    assert chain.refused(CAROL, content).code is ErrorCode.FORBIDDEN
    chain.add(BOB, content)
    chain.add(ALICE, content)


@pytest.mark.parametrize("content", SETTINGS, ids=lambda c: type(c).__name__)
def test_settings_take_anyone_in_a_direct_chat(content: Content) -> None:
    chain = direct()
    chain.add(BOB, content)
    chain.add(ALICE, content)


def test_the_timer_is_part_of_the_state() -> None:
    chain = direct()
    chain.add(BOB, Timer(seconds=3600))
    assert chain.state.timer_seconds == 3600
    chain.add(ALICE, Timer(seconds=0))
    assert chain.state.timer_seconds == 0
    chain.add(ALICE, Title(sealed=b"x"))
    assert chain.state.timer_seconds == 0


def test_apply_event_leaves_the_old_state_alone() -> None:
    chain = group(bob=Role.MEMBER)
    before = chain.state
    snapshot = copy.deepcopy(before)
    chain.add(ALICE, join(CAROL))
    chain.add(ALICE, leave(BOB))
    assert before == snapshot
    assert chain.state != snapshot


# ---------------------------------------------------------------- random sequences

USERS = [ALICE, BOB, CAROL, DAVE, ERIN]

Verb = Literal["join", "leave", "title", "timer", "create", "stale"]
#: (sender is a current member?, sender index, verb, target index, role)
Action = tuple[bool, int, Verb, int, Role]

ACTIONS: st.SearchStrategy[Action] = st.tuples(
    st.sampled_from([True, True, True, False]),
    st.integers(0, 20),
    st.sampled_from(["join", "join", "join", "leave", "title", "timer", "create", "stale"]),
    st.integers(0, len(USERS) - 1),
    st.sampled_from(list(Role)),
)


def _content(kind: str, target: UserId, role: Role, n: int) -> Content:
    if kind == "join":
        return join(target, role)
    if kind == "leave":
        return leave(target)
    if kind == "title":
        return Title(sealed=bytes([n % 256]))
    if kind == "create":
        return Create(kind=Kind.GROUP)
    return Timer(seconds=n)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(list(Kind)), actions=st.lists(ACTIONS, max_size=40))
def test_replay_equals_incremental_application(kind: Kind, actions: list[Action]) -> None:
    chain = Chain(kind)
    seen = [chain.state]
    for n, (from_member, sender_i, what, target_i, role) in enumerate(actions):
        senders = sorted(chain.state.members) if from_member and chain.state.members else USERS
        sender, target = senders[sender_i % len(senders)], USERS[target_i]
        ev = chain.next(sender, _content(what, target, role, n))
        if what == "stale" and len(chain.events) > 1:  # a sibling of the current head
            head = chain.events[-1]
            ev = event(sender, Timer(seconds=n), depth=head.depth, prev=head.prev)
        before = copy.deepcopy(chain.state)
        refused: ErrorCode | None = None
        try:
            new = apply_event(chain.state, ev)
        except ProtocolError as exc:
            refused = exc.code
        if refused is not None:
            assert refused in (ErrorCode.FORBIDDEN, ErrorCode.CONFLICT)
            assert chain.state == before  # a refused event changes nothing
            continue
        assert chain.state == before  # the old state is not changed either
        chain.state = new
        chain.events.append(ev)
        seen.append(new)
        # invariants of every admitted state
        assert new.depth == len(chain.events) - 1
        assert new.head == ev.event_hash()
        assert new.creator == ALICE
        if kind is Kind.DIRECT:
            assert len(new.members) <= 2
    assert replay(chain.events) == chain.state
    # every prefix of an admitted chain replays to the state seen at that point
    for length in range(1, len(chain.events)):
        assert replay(chain.events[:length]) == seen[length - 1]
