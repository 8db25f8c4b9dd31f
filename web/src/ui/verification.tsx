// Emoji verification (SAS): the incoming request, waiting for the other
// side, comparing the emoji, and the result.
import type { JSX } from "preact";
import { dismissedVerification, useClient } from "./context";
import { Dialog } from "./dialog";
import { displayName } from "./format";
import { ShieldIcon } from "./icons";

export function VerificationDialog(): JSX.Element | null {
  const client = useClient();
  const v = client.state.verification.value;
  const contacts = client.state.contacts.value;
  if (!v || dismissedVerification.value === v.transaction) return null;
  const name = displayName(v.user, contacts);
  const cancel = () => void client.verifyCancel(v.transaction);
  switch (v.stage) {
    case "incoming":
      return (
        <Dialog title="Verification request" onClose={cancel} testid="verify-dialog">
          <p class="dialog__text">
            <strong>{name}</strong> ({v.user}) wants to verify that your chats with them are private. Do this when you
            can talk to them, in person or on a call.
          </p>
          <div class="dialog__actions">
            <button type="button" class="button button--ghost" onClick={cancel} data-testid="verify-cancel">
              Not now
            </button>
            <button type="button" class="button" onClick={() => void client.verifyAccept(v.transaction)} data-testid="verify-accept">
              Verify
            </button>
          </div>
        </Dialog>
      );
    case "waiting":
      return (
        <Dialog title="Verify with emoji" onClose={cancel} testid="verify-dialog">
          <div class="waiting waiting--inline" role="status">
            <div class="spinner" aria-hidden="true" />
            <p>Waiting for {name} to accept…</p>
          </div>
          <div class="dialog__actions">
            <button type="button" class="button button--ghost" onClick={cancel} data-testid="verify-cancel">
              Cancel
            </button>
          </div>
        </Dialog>
      );
    case "emoji":
      return (
        <Dialog title="Compare emoji" onClose={cancel} testid="verify-dialog" noClose>
          <p class="dialog__text">Check that {name} sees the same emoji, in the same order.</p>
          <ol class="sas-grid" data-testid="verify-emoji-grid">
            {v.emoji.map(([symbol, label], i) => (
              <li key={i} class="sas-grid__item">
                <span class="sas-grid__emoji" aria-hidden="true">
                  {symbol}
                </span>
                <span class="sas-grid__name">{label}</span>
              </li>
            ))}
          </ol>
          <div class="dialog__actions">
            <button type="button" class="button button--danger-ghost" onClick={cancel} data-testid="verify-mismatch">
              They don't match
            </button>
            <button type="button" class="button" onClick={() => void client.verifyConfirm(v.transaction)} data-testid="verify-match">
              They match
            </button>
          </div>
        </Dialog>
      );
    case "done": {
      const close = () => (dismissedVerification.value = v.transaction);
      return (
        <Dialog title={v.verified ? "Verified" : "Not verified"} onClose={close} testid="verify-dialog">
          <div class={`verify-result${v.verified ? " verify-result--ok" : ""}`} data-testid="verify-result" data-verified={v.verified}>
            <ShieldIcon size={40} />
            <p>
              {v.verified
                ? `You have verified ${name}. A change of their keys will be shown in your chats.`
                : `${name} was not verified${v.reason ? `: ${v.reason}` : "."}`}
            </p>
          </div>
          <div class="dialog__actions">
            <button type="button" class="button" onClick={close} data-testid="verify-close">
              Done
            </button>
          </div>
        </Dialog>
      );
    }
  }
}
