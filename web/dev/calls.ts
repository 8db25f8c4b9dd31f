// The dev fixture's calls: none ring (the call screens are shown by the
// browser tests, with two real browsers in a call).
import { signal } from "@preact/signals";
import type { CallsView, CallView } from "../src/client/calls";

export function fakeCalls(): CallsView {
  const current = signal<CallView | null>(null);
  const none = async () => undefined;
  return {
    current,
    place: none,
    answer: none,
    reject: none,
    hangUp: none,
    dismiss: () => undefined,
    setMuted: () => undefined,
    setCameraOff: () => undefined,
    shareScreen: none,
    stats: async () => ({ bytesReceived: 0, framesDecoded: 0, packetsReceived: 0 }),
  };
}
