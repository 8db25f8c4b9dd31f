// A modal built on <dialog>: focus stays inside, Escape closes it.
import type { ComponentChildren, JSX } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { CloseIcon } from "./icons";

interface DialogProps {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  testid?: string;
  wide?: boolean;
  /** hide the close button (a flow the user must finish) */
  noClose?: boolean;
}

export function Dialog({ title, onClose, children, testid, wide, noClose }: DialogProps): JSX.Element {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (el && !el.open) el.showModal();
    return () => {
      if (el?.open) el.close();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      class={wide ? "dialog dialog--wide" : "dialog"}
      aria-label={title}
      data-testid={testid}
      onCancel={(e) => {
        e.preventDefault();
        if (!noClose) onClose();
      }}
      onClick={(e) => {
        if (e.target === ref.current && !noClose) onClose();
      }}
    >
      <div class="dialog__body">
        <header class="dialog__header">
          <h2>{title}</h2>
          {!noClose && (
            <button type="button" class="icon-button" aria-label="Close" data-testid="dialog-close" onClick={onClose}>
              <CloseIcon />
            </button>
          )}
        </header>
        {children}
      </div>
    </dialog>
  );
}

interface ConfirmProps {
  title: string;
  text: string;
  confirm: string;
  danger?: boolean;
  onConfirm: () => void;
  onClose: () => void;
}

export function ConfirmDialog({ title, text, confirm, danger, onConfirm, onClose }: ConfirmProps): JSX.Element {
  return (
    <Dialog title={title} onClose={onClose} testid="confirm-dialog">
      <p class="dialog__text">{text}</p>
      <div class="dialog__actions">
        <button type="button" class="button button--ghost" onClick={onClose} data-testid="confirm-cancel">
          Cancel
        </button>
        <button
          type="button"
          class={danger ? "button button--danger" : "button"}
          data-testid="confirm-ok"
          autofocus
          onClick={() => {
            onConfirm();
            onClose();
          }}
        >
          {confirm}
        </button>
      </div>
    </Dialog>
  );
}

/** The error a form or dialog shows, if any (announced to screen readers). */
export function FormError({ error, testid }: { error: string | null; testid?: string }): JSX.Element | null {
  return error ? (
    <p class="form__error" role="alert" data-testid={testid}>
      {error}
    </p>
  ) : null;
}
