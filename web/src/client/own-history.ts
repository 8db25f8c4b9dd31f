// History for the user's own device that came in with the recovery code.
// Logging in with the recovery code restores the identity key but no
// messages; so the new device asks the user's other devices, and one that
// is online answers with its history (the format linking uses), encrypted
// like an attachment, the key in an Olm to-device message. Both sides only
// deal with devices certified by the identity key they themselves hold:
// whoever holds it is the user.
import type { VerifiedDevice } from "../crypto/keys";
import { isEntry } from "./attachments";
import type { TaubeCarrier } from "./carrier";
import type { AttachmentEntry } from "./model";
import type { Account, HistoryTransfer } from "./types";

export const HISTORY_PREFIX = "taube.history.";
const REQUEST = "taube.history.request";
const GRANT = "taube.history.grant";

export class OwnHistory {
  readonly prefix = HISTORY_PREFIX;
  /** this device asked and has not been answered yet */
  private asked = false;

  constructor(
    private readonly account: Account,
    private readonly carrier: TaubeCarrier,
    private readonly history: HistoryTransfer,
    /** a history was imported: read the profile again */
    private readonly imported: () => Promise<void>,
  ) {}

  /** Ask the user's other devices for their history. */
  async request(): Promise<void> {
    const keys = this.account.need();
    await keys.refresh([keys.user]);
    const mine = (await keys.devicesOf([keys.user])).filter((d) => d.device !== keys.device && this.isOwn(d));
    this.asked = mine.length > 0;
    for (const device of mine) await this.carrier.sendToDevice(device, REQUEST, {});
  }

  async onMessage(sender: VerifiedDevice, type: string, content: Record<string, unknown>): Promise<void> {
    if (!this.isOwn(sender) || sender.device === this.account.need().device) return;
    if (type === REQUEST) {
      const history = await this.history.exportHistory();
      await this.carrier.sendToDevice(sender, GRANT, { history });
    } else if (type === GRANT && this.asked && isEntry(content.history)) {
      this.asked = false; // the first answer is enough
      await this.history.importHistory(content.history as unknown as AttachmentEntry);
      await this.imported();
    }
  }

  private isOwn(device: VerifiedDevice): boolean {
    const keys = this.account.need();
    return device.user === keys.user && device.identityKey === keys.identity.publicKey;
  }
}
