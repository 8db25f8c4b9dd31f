"""IRC lines: long messages cut to fit, and what comes in made plain text.

An IRC line is at most 512 bytes with its CRLF, and the server puts the
sender's ``:nick!user@host`` in front before passing it on, so what one
PRIVMSG carries is less than that: ``budget`` counts it, with the longest
host a server may show (63 bytes). Text is cut at a space where one is
near, never inside a UTF-8 character, and every line break starts a new
message (IRC has none).
"""

from __future__ import annotations

import re

LINE = 512
#: the longest host a server shows in a prefix (RFC 1035 label bound, as ircds use)
HOST = 63
#: how far back from the limit a space is looked for
WORD = 40
#: mIRC colours and the formatting controls (bold, italic, reset, ...)
FORMATTING = re.compile(
    r"\x03(\d{1,2}(,\d{1,2})?)?|\x04[0-9a-fA-F]{0,6}|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def budget(nick: str, user: str, target: str) -> int:
    """Bytes of text one ``PRIVMSG target :text`` may carry."""
    prefix = 1 + len(nick.encode()) + 1 + len(user.encode()) + 1 + HOST + 1
    command = len(f"PRIVMSG {target} :".encode())
    return LINE - 2 - prefix - command


def split(text: str, limit: int) -> list[str]:
    """``text`` as lines of at most ``limit`` UTF-8 bytes (empty lines dropped)."""
    if limit < 8:
        raise ValueError("no room for text in an IRC line")
    out: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        data = CONTROL.sub("", raw).encode()
        while data:
            if len(data) <= limit:
                out.append(data.decode())
                break
            cut = limit
            while cut > 0 and (data[cut] & 0xC0) == 0x80:  # not inside a character
                cut -= 1
            space = data.rfind(b" ", max(0, cut - WORD), cut)
            if space > 0:
                out.append(data[:space].decode())
                data = data[space + 1 :]
            else:
                out.append(data[:cut].decode())
                data = data[cut:]
    return [line for line in out if line.strip()]


def plain(text: str) -> str:
    """What an IRC message says, without colours and control characters."""
    return CONTROL.sub("", FORMATTING.sub("", text))
