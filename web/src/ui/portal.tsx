// Portals on screen: the network badge of a chat that reaches another
// network (e-mail), the banner while no connector serves it, and the line
// under the user's own messages saying how the connector sent them on.
import type { JSX } from "preact";
import type { Portal, Relayed } from "../client/model";
import { networkLabel } from "./format";
import { AlertIcon } from "./icons";

/** "e-mail" next to a portal chat's name (list and header) */
export function NetworkBadge({ portal }: { portal: Portal }): JSX.Element {
  const label = networkLabel(portal.network);
  return (
    <span class="network-badge" title={`Chat over ${label}`} data-testid="portal-badge" data-network={portal.network}>
      <span aria-hidden="true">✉ </span>
      {label}
    </span>
  );
}

/** Shown in a portal chat until a connector claims it. */
export function PortalBanner({ portal }: { portal: Portal }): JSX.Element | null {
  if (portal.by !== null) return null;
  return (
    <div class="portal-banner" role="status" data-testid="portal-waiting">
      Waiting for your {networkLabel(portal.network)} connector (set it up with <code>taube mail connect</code>)
    </div>
  );
}

/** Under one of the user's own messages: how it went on to the other network. */
export function RelayLine({ relayed }: { relayed: Relayed }): JSX.Element {
  const label = networkLabel(relayed.network);
  if (relayed.error) {
    return (
      <p class="message__relay message__relay--failed" data-testid="message-relay" data-state="failed">
        <AlertIcon size={13} /> could not be sent by {label}: {relayed.error}
      </p>
    );
  }
  if (!relayed.encrypted) {
    return (
      <p
        class="message__relay message__relay--plain"
        data-testid="message-relay"
        data-state="plain"
        title={`The ${label} left your connector without end-to-end encryption: the mail servers on the way could read it.`}
      >
        <AlertIcon size={13} /> ✉ sent by {label} · <strong>not encrypted</strong>
        {relayed.plainTo.length > 0 && ` to ${relayed.plainTo.join(", ")}`}
      </p>
    );
  }
  return (
    <p class="message__relay" data-testid="message-relay" data-state="encrypted">
      ✉ sent by {label} · encrypted
    </p>
  );
}
