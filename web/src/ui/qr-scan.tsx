// Scanning a QR code with the camera (the link code another device shows).
// Frames go from a <video> to a canvas and through jsQR; nothing leaves the
// page. Chromium on Linux has no BarcodeDetector, so the decoding is ours.
import jsQR from "jsqr";
import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { Dialog } from "./dialog";

const SCAN_EVERY_MS = 150;

export function canScan(): boolean {
  return typeof navigator !== "undefined" && !!navigator.mediaDevices?.getUserMedia;
}

/** A dialog showing the camera until `accept` takes a decoded text. */
export function QrScanner({
  onResult,
  onClose,
  accept,
}: {
  onResult: (text: string) => void;
  onClose: () => void;
  accept: (text: string) => boolean;
}): JSX.Element {
  const video = useRef<HTMLVideoElement>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let stream: MediaStream | null = null;
    let timer: ReturnType<typeof setInterval> | undefined;
    let stopped = false;
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    navigator.mediaDevices
      .getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then((media) => {
        stream = media;
        if (stopped || !video.current) return media.getTracks().forEach((t) => t.stop());
        video.current.srcObject = media;
        void video.current.play();
        timer = setInterval(() => {
          const el = video.current;
          if (!el || !context || el.videoWidth === 0) return;
          canvas.width = el.videoWidth;
          canvas.height = el.videoHeight;
          context.drawImage(el, 0, 0);
          const frame = context.getImageData(0, 0, canvas.width, canvas.height);
          const found = jsQR(frame.data, frame.width, frame.height, { inversionAttempts: "dontInvert" });
          if (found && accept(found.data)) onResult(found.data);
        }, SCAN_EVERY_MS);
      })
      .catch(() => setError("The camera is not available: type the code instead."));
    return () => {
      stopped = true;
      clearInterval(timer);
      stream?.getTracks().forEach((t) => t.stop());
    };
  }, []);

  return (
    <Dialog title="Scan the code" onClose={onClose} testid="qr-scanner">
      <p class="dialog__text">Point the camera at the QR code on your other device.</p>
      {error ? (
        <p class="form__error" role="alert">
          {error}
        </p>
      ) : (
        <video class="qr-video" ref={video} muted playsInline aria-label="Camera" data-testid="qr-video" />
      )}
    </Dialog>
  );
}
