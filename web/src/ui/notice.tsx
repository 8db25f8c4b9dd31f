// Centred system lines: missing messages, key changes, undecryptable
// messages, membership and timer changes.
import type { JSX } from "preact";
import type { Notice } from "../client/model";
import { panel, useClient } from "./context";
import { displayName, formatTime, timerLabel } from "./format";
import { AlertIcon, ShieldIcon, TimerIcon } from "./icons";

export function NoticeLine({ notice }: { notice: Notice }): JSX.Element {
  const { state } = useClient();
  const contacts = state.contacts.value;
  const time = formatTime(notice.ts);
  switch (notice.kind) {
    case "missing":
      return (
        <p class="notice notice--warning" data-testid="notice" data-kind="missing">
          <AlertIcon size={16} />
          <span>
            {notice.count === 1 ? "A message" : `${notice.count} messages`} from {displayName(notice.sender, contacts)}{" "}
            {notice.count === 1 ? "is" : "are"} missing.
          </span>
        </p>
      );
    case "key-changed":
      return (
        <p class="notice notice--warning" data-testid="notice" data-kind="key-changed">
          <ShieldIcon size={16} />
          <span>
            The safety number with {displayName(notice.user, contacts)} changed
            {notice.reason ? ` (${notice.reason})` : ""}.{" "}
            {notice.verified && "Sending is paused until you verify them again. "}
          </span>
          <button
            type="button"
            class="link-button"
            onClick={() => (panel.value = { kind: "contact", user: notice.user, from: notice.conversation })}
          >
            Verify
          </button>
        </p>
      );
    case "undecryptable":
      return (
        <p class="notice notice--error" data-testid="notice" data-kind="undecryptable">
          <AlertIcon size={16} />
          <span>
            A message from {displayName(notice.sender, contacts)} could not be decrypted
            {notice.reason ? ` (${notice.reason})` : ""}.
          </span>
        </p>
      );
    case "membership":
      return (
        <p class="notice" data-testid="notice" data-kind="membership">
          <span>{notice.text}</span>
          <time class="notice__time">{time}</time>
        </p>
      );
    case "timer":
      return (
        <p class="notice" data-testid="notice" data-kind="timer">
          <TimerIcon size={16} />
          <span>
            {notice.seconds > 0
              ? `Messages now disappear after ${timerLabel(notice.seconds).toLowerCase()}.`
              : "Disappearing messages are off."}
          </span>
        </p>
      );
  }
}
