"""Other people as the server shows them, and this account's privacy.

Presence (as far as the other person's setting lets us see it), the opt-in
directory, and the account's own settings (who sees its presence, whether it
can be found by name). None of this is end-to-end encrypted: it is what the
server knows anyway, or what the user chose to publish; the server enforces
every setting (``taube.server.http.people``).
"""

from __future__ import annotations

from taube.client.transport import Api
from taube.proto import people
from taube.proto.ids import parse_address

Visibility = people.Visibility
Presence = people.Presence
Privacy = people.Privacy
Person = people.Person


async def presence(api: Api, address: str) -> people.Presence:
    """``visible`` false: their setting hides it from this account."""
    return await api.get(f"/presence/{parse_address(address)}", people.Presence)


async def privacy(api: Api) -> people.Privacy:
    return await api.get("/privacy", people.Privacy)


async def set_privacy(
    api: Api,
    *,
    presence: Visibility | None = None,
    findable: bool | None = None,
    name: str | None = None,
) -> people.Privacy:
    """Change what is given, keep the rest; ``findable`` needs a ``name``
    (the one stored, if none is given)."""
    now = await privacy(api)
    changed = people.Privacy(
        presence=now.presence if presence is None else presence,
        findable=now.findable if findable is None else findable,
        name=now.name if name is None else name,
    )
    result = await api.call("PUT", "/privacy", changed, people.Privacy)
    assert result is not None
    return result


async def search_directory(api: Api, query: str) -> list[people.Person]:
    found = await api.post(
        "/directory/search", people.DirectoryQuery(query=query), people.DirectoryResults
    )
    return list(found.people)
