// The disappearing-message timer: a menu in the chat header.
import type { JSX } from "preact";
import { useEffect, useRef } from "preact/hooks";
import type { ConversationView } from "../client/model";
import { useClient } from "./context";
import { TIMER_OPTIONS } from "./format";
import { CheckIcon } from "./icons";

export function TimerMenu({ conversation, onClose }: { conversation: ConversationView; onClose: () => void }): JSX.Element {
  const client = useClient();
  const ref = useRef<HTMLDivElement>(null);
  useDismiss(ref, onClose);
  useEffect(() => {
    ref.current?.querySelector<HTMLButtonElement>("[aria-checked=true]")?.focus();
  }, []);
  return (
    <div class="menu menu--right" role="menu" aria-label="Disappearing messages" ref={ref} data-testid="timer-menu">
      <p class="menu__title">Disappearing messages</p>
      {TIMER_OPTIONS.map(([seconds, label]) => (
        <button
          key={seconds}
          type="button"
          role="menuitemradio"
          aria-checked={conversation.timerSeconds === seconds}
          class="menu__item"
          data-testid="timer-option"
          data-seconds={seconds}
          onClick={() => {
            void client.setTimer(conversation.id, seconds);
            onClose();
          }}
        >
          <span class="menu__check">{conversation.timerSeconds === seconds && <CheckIcon size={16} />}</span>
          {label}
        </button>
      ))}
    </div>
  );
}

/** close a popover on Escape or a click outside it; arrows move focus */
export function useDismiss(ref: { current: HTMLElement | null }, onClose: () => void): void {
  useEffect(() => {
    const onDown = (e: PointerEvent) => {
      const el = ref.current;
      if (el && e.target instanceof Node && !el.contains(e.target)) onClose();
    };
    const onKey = (e: KeyboardEvent) => {
      const el = ref.current;
      if (e.key === "Escape") {
        e.stopPropagation();
        onClose();
      } else if ((e.key === "ArrowDown" || e.key === "ArrowUp") && el) {
        const items = [...el.querySelectorAll<HTMLElement>("[role^=menuitem]")];
        const i = items.indexOf(document.activeElement as HTMLElement);
        const next = items[(i + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length];
        if (next) {
          e.preventDefault();
          next.focus();
        }
      }
    };
    // after the click that opened it
    const timer = setTimeout(() => document.addEventListener("pointerdown", onDown), 0);
    document.addEventListener("keydown", onKey, true);
    return () => {
      clearTimeout(timer);
      document.removeEventListener("pointerdown", onDown);
      document.removeEventListener("keydown", onKey, true);
    };
  }, []);
}
