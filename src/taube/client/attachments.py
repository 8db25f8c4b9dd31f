"""Attachments: encrypted on this device, uploaded as opaque blobs.

A file is encrypted with a fresh key (``taube.crypto.attachments``) into a
temporary file, streamed to ``POST /blobs``, and the message that carries it
holds the blob id, the key and the SHA-256 of the ciphertext, inside the
Megolm-encrypted payload. The receiving device downloads and decrypts every
attachment into the profile *before* it acknowledges the message, because
the server deletes a blob once every device has acknowledged it.
"""

from __future__ import annotations

import asyncio
import io
import mimetypes
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from taube.client.transport import Api
from taube.crypto import AttachmentKey, decrypt_to_path, encrypt_file
from taube.proto import http

#: what the app can do with an attachment (shown inline or offered for download)
KINDS = ("file", "image", "video", "audio", "voice", "pdf", "thumbnail")


def kind_of(path: Path, mime: str) -> str:
    if mime == "application/pdf":
        return "pdf"
    for prefix in ("image", "video", "audio"):
        if mime.startswith(prefix + "/"):
            return prefix
    return "file"


THUMBNAIL_SIZE = 320  #: the longer side of an image thumbnail, in pixels


def thumbnail(path: Path) -> tuple[bytes, int, int] | None:
    """A JPEG thumbnail and the image's size, made on the device; ``None``
    when Pillow (the ``media`` extra) is missing or the file is no image."""
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        return None
    try:
        with Image.open(path) as image:
            width, height = image.size
            small = ImageOps.exif_transpose(image).convert("RGB")
            small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
            out = io.BytesIO()
            small.save(out, "JPEG", quality=80)
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return out.getvalue(), width, height


def entries_of(attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every encrypted blob a message's attachments name: files and thumbnails."""
    found = []
    for entry in attachments:
        found.append(entry)
        if isinstance(entry.get("thumbnail"), dict):
            found.append(entry["thumbnail"])
    return found


async def upload(
    api: Api, path: Path, *, kind: str | None = None, name: str | None = None
) -> dict[str, Any]:
    """Encrypt and upload ``path`` (and an image's thumbnail); returns the
    attachment entry for a message."""
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    kind = kind or kind_of(path, mime)
    extra: dict[str, Any] = {}
    if kind == "image":
        made = await asyncio.to_thread(thumbnail, path)
        if made is not None:
            data, width, height = made
            with tempfile.TemporaryDirectory() as directory:
                small = Path(directory) / "thumbnail.jpg"
                await asyncio.to_thread(small.write_bytes, data)
                extra = {
                    "width": width,
                    "height": height,
                    "thumbnail": await upload(api, small, kind="thumbnail"),
                }
    with tempfile.TemporaryFile() as sealed:
        with path.open("rb") as source:
            key = await asyncio.to_thread(encrypt_file, source, sealed)
        size = sealed.tell()
        sealed.seek(0)
        created = await api.call("POST", "/blobs", response=http.BlobCreated, raw=sealed)
    assert created is not None
    return {
        "blob": created.blob,
        "name": name or path.name,
        "mime": mime,
        "size": (await asyncio.to_thread(path.stat)).st_size,
        "encrypted_size": size,
        "kind": kind,
        "key": msgspec.to_builtins(key),
        **extra,
    }


async def download(api: Api, entry: dict[str, Any], directory: Path) -> Path:
    """Download and decrypt one attachment into ``directory``; the file
    appears only if the hash and every chunk checked out."""
    key = msgspec.convert(entry["key"], AttachmentKey)
    target = directory / f"{entry['blob']}-{Path(str(entry.get('name', 'file'))).name}"
    if target.exists():
        return target
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    data = await api.call("GET", f"/blobs/{entry['blob']}", response=bytes)
    assert isinstance(data, bytes)
    with tempfile.TemporaryFile() as sealed:
        sealed.write(data)
        sealed.seek(0)
        await asyncio.to_thread(decrypt_to_path, sealed, key, target)
    return target
