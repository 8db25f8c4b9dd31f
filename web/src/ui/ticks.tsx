// Delivery state of my messages: clock, ✓, ✓✓, coloured ✓✓.
import type { JSX } from "preact";
import type { MessageStatus } from "../client/model";
import { AlertIcon, CheckIcon, ClockIcon, DoubleCheckIcon } from "./icons";

const LABEL: Record<MessageStatus, string> = {
  pending: "Waiting to send",
  sent: "Sent",
  delivered: "Delivered",
  read: "Read",
  received: "",
  failed: "Not sent",
};

export function StatusTicks({ status }: { status: MessageStatus }): JSX.Element | null {
  if (status === "received") return null;
  const label = LABEL[status];
  return (
    <span class={`ticks ticks--${status}`} role="img" aria-label={label} title={label} data-testid="ticks">
      {status === "pending" && <ClockIcon size={14} />}
      {status === "sent" && <CheckIcon size={15} />}
      {(status === "delivered" || status === "read") && <DoubleCheckIcon size={17} />}
      {status === "failed" && <AlertIcon size={14} />}
    </span>
  );
}
