// Shown while the engine starts (keys are unwrapped, the database opened),
// and if it cannot start.
import type { JSX } from "preact";
import { LogoMark } from "./icons";

export function Splash(): JSX.Element {
  return (
    <main class="splash" aria-busy="true" aria-label="taube is starting">
      <LogoMark size={72} />
      <div class="spinner" aria-hidden="true" />
    </main>
  );
}

export function StartFailed({ error }: { error: string }): JSX.Element {
  return (
    <main class="splash">
      <LogoMark size={72} />
      <h1>taube could not start</h1>
      <p class="muted" role="alert">
        {error}
      </p>
      <button type="button" class="button" onClick={() => location.reload()}>
        Try again
      </button>
    </main>
  );
}
