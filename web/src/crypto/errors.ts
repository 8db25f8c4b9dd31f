// The errors of the crypto layer: one class, one kind per thing the caller
// does about it (the Python tree in taube.crypto.errors, flattened):
//
//   bad_key              a public key is malformed, all-zero or of low order
//   bad_signature        a signature does not verify (verifySignature only)
//   untrusted_device     a certificate, one-time key signature or SAS MAC does not verify
//   decryption_failed    ciphertext changed, cut short, duplicated or for another key
//   unknown_session      no session (yet) to decrypt with: wait for the key
//   replayed             this (session, message index) was accepted before
//   bad_payload          decrypted, but malformed or bound to another sender/place
//   wrong_recovery_code  the recovery code is malformed or does not open the backup
//
// Messages never contain plaintext or secret keys; public keys and ids may appear.

export type CryptoErrorKind =
  | "bad_key"
  | "bad_signature"
  | "untrusted_device"
  | "decryption_failed"
  | "unknown_session"
  | "replayed"
  | "bad_payload"
  | "wrong_recovery_code";

export class CryptoError extends Error {
  readonly kind: CryptoErrorKind;

  constructor(kind: CryptoErrorKind, message: string) {
    super(message);
    this.name = "CryptoError";
    this.kind = kind;
  }
}

/** Whether `err` is a CryptoError (of `kind`, if given). */
export function isCryptoError(err: unknown, kind?: CryptoErrorKind): err is CryptoError {
  return err instanceof CryptoError && (kind === undefined || err.kind === kind);
}
