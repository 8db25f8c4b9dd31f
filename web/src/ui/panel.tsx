// The frame of a side panel: a header with a close button, a scrolling body.
import type { ComponentChildren, JSX } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { panel } from "./context";
import { BackIcon, CloseIcon } from "./icons";

interface PanelProps {
  title: string;
  children: ComponentChildren;
  testid: string;
  onBack?: () => void;
}

export function PanelFrame({ title, children, testid, onBack }: PanelProps): JSX.Element {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    heading.current?.focus();
  }, [title]);
  return (
    <div class="panel" data-testid={testid}>
      <header class="panel__header">
        {onBack ? (
          <button type="button" class="icon-button" aria-label="Back" onClick={onBack} data-testid="panel-back">
            <BackIcon />
          </button>
        ) : (
          <button type="button" class="icon-button" aria-label="Close" onClick={() => (panel.value = null)} data-testid="panel-close">
            <CloseIcon />
          </button>
        )}
        <h2 class="panel__title" tabIndex={-1} ref={heading}>
          {title}
        </h2>
      </header>
      <div class="panel__body">{children}</div>
    </div>
  );
}

export function Section({ title, children, testid }: { title?: string; children: ComponentChildren; testid?: string }): JSX.Element {
  return (
    <section class="panel-section" data-testid={testid}>
      {title && <h3 class="panel-section__title">{title}</h3>}
      {children}
    </section>
  );
}
