"""The HTTP API as data: every endpoint with its bodies.

The server registers its routes from this table and the OpenAPI document is
generated from it, so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from taube.proto import http, people
from taube.proto.keys import IdentityKey
from taube.proto.state import StateEvent


@dataclasses.dataclass(frozen=True)
class Endpoint:
    name: str  #: the handler's name in the server, and the OpenAPI operationId
    method: str
    path: str
    summary: str
    request: type[Any] | None = None
    response: type[Any] | None = None
    status: int = 200
    auth: bool = True
    raw_request: bool = False  #: the body is raw bytes (blob upload)
    raw_response: bool = False  #: the answer is raw bytes (blob download)
    errors: tuple[int, ...] = ()


PREFIX = "/api/v1"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "server_info",
        "GET",
        "/info",
        "What this server is and speaks",
        response=http.ServerInfo,
        auth=False,
    ),
    Endpoint(
        "register",
        "POST",
        "/accounts",
        "Create an account and its first device",
        request=http.Credentials,
        response=http.Session,
        status=201,
        auth=False,
        errors=(400, 409, 429),
    ),
    Endpoint(
        "login",
        "POST",
        "/sessions",
        "Log in: a new device with its own token",
        request=http.Credentials,
        response=http.Session,
        status=201,
        auth=False,
        errors=(400, 401, 429),
    ),
    Endpoint("logout", "DELETE", "/sessions/current", "Log out: remove this device", status=204),
    Endpoint("list_devices", "GET", "/devices", "The account's devices", response=http.DeviceList),
    Endpoint(
        "rename_device",
        "PATCH",
        "/devices/{device}",
        "Rename a device",
        request=http.RenameDevice,
        status=204,
        errors=(404,),
    ),
    Endpoint(
        "remove_device",
        "DELETE",
        "/devices/{device}",
        "Remove a device (needs the password); its token dies and its sockets close",
        request=http.RemoveDevice,
        status=204,
        errors=(401, 404, 429),
    ),
    Endpoint(
        "publish_identity",
        "PUT",
        "/keys/identity",
        "Publish the user's identity key",
        request=IdentityKey,
        status=204,
        errors=(400,),
    ),
    Endpoint(
        "upload_keys",
        "POST",
        "/keys/upload",
        "Upload this device's certificate, one-time keys and fallback key",
        request=http.UploadKeys,
        response=http.KeyCount,
        errors=(400,),
    ),
    Endpoint(
        "count_keys", "GET", "/keys/count", "How many one-time keys remain", response=http.KeyCount
    ),
    Endpoint(
        "put_key_backup",
        "PUT",
        "/keys/backup",
        "Store the identity key sealed with the recovery code (opaque to the server)",
        request=http.KeyBackup,
        status=204,
    ),
    Endpoint(
        "get_key_backup",
        "GET",
        "/keys/backup",
        "The sealed identity key backup",
        response=http.KeyBackup,
        errors=(404,),
    ),
    Endpoint(
        "query_keys",
        "POST",
        "/keys/query",
        "Identity keys and devices of users",
        request=http.QueryKeys,
        response=http.KeysResponse,
    ),
    Endpoint(
        "claim_keys",
        "POST",
        "/keys/claim",
        "Claim one one-time key (else the fallback key) per device",
        request=http.ClaimKeys,
        response=http.ClaimResponse,
    ),
    Endpoint(
        "create_conversation",
        "POST",
        "/conversations",
        "Create a conversation from its signed create and member events",
        request=http.CreateConversation,
        response=http.ConversationInfo,
        status=201,
        errors=(400, 403, 409),
    ),
    Endpoint(
        "list_conversations",
        "GET",
        "/conversations",
        "The user's conversations",
        response=http.ConversationList,
    ),
    Endpoint(
        "get_conversation",
        "GET",
        "/conversations/{conversation}",
        "A conversation's current state",
        response=http.ConversationInfo,
        errors=(404,),
    ),
    Endpoint(
        "get_state",
        "GET",
        "/conversations/{conversation}/state",
        "The whole signed state chain",
        response=http.StateChain,
        errors=(404,),
    ),
    Endpoint(
        "append_state",
        "POST",
        "/conversations/{conversation}/state",
        "Append a signed state event",
        request=StateEvent,
        response=http.Appended,
        errors=(400, 403, 404, 409),
    ),
    Endpoint(
        "upload_blob",
        "POST",
        "/blobs",
        "Upload an encrypted attachment",
        response=http.BlobCreated,
        status=201,
        raw_request=True,
        errors=(411, 413, 507),
    ),
    Endpoint(
        "download_blob",
        "GET",
        "/blobs/{blob}",
        "Download an encrypted attachment",
        raw_response=True,
        errors=(404,),
    ),
    Endpoint(
        "create_invite",
        "POST",
        "/invites",
        "Register an invite link's id (the link's secret stays with the inviter)",
        request=people.NewInvite,
        response=people.Invite,
        status=201,
        errors=(400, 409, 429),
    ),
    Endpoint(
        "revoke_invite",
        "DELETE",
        "/invites/{invite}",
        "Revoke one of the caller's invites",
        status=204,
        errors=(404,),
    ),
    Endpoint(
        "check_invite",
        "POST",
        "/invites/check",
        "Whether an invite can still be used, and whose it is (before signing up)",
        request=people.InviteRef,
        response=people.Invite,
        auth=False,
        errors=(404, 410, 429),
    ),
    Endpoint(
        "redeem_invite",
        "POST",
        "/invites/redeem",
        "Use an invite up (again by the same user: the same answer)",
        request=people.InviteRef,
        response=people.Invite,
        errors=(404, 410, 429),
    ),
    Endpoint(
        "get_privacy",
        "GET",
        "/privacy",
        "The account's privacy settings (presence, directory)",
        response=people.Privacy,
    ),
    Endpoint(
        "set_privacy",
        "PUT",
        "/privacy",
        "Change the account's privacy settings",
        request=people.Privacy,
        response=people.Privacy,
    ),
    Endpoint(
        "get_presence",
        "GET",
        "/presence/{user}",
        "Online and last seen of a user, as far as their privacy setting lets the caller see",
        response=people.Presence,
        errors=(429,),
    ),
    Endpoint(
        "search_directory",
        "POST",
        "/directory/search",
        "People who chose to be found, by name (rate-limited)",
        request=people.DirectoryQuery,
        response=people.DirectoryResults,
        errors=(429,),
    ),
    Endpoint(
        "turn_credentials",
        "GET",
        "/turn",
        "Time-limited TURN credentials for calls",
        response=http.TurnCredentials,
    ),
)

BY_NAME = {endpoint.name: endpoint for endpoint in ENDPOINTS}
