// QR codes as a data: URL of an SVG image (no inline markup, CSP-safe).
import type { JSX } from "preact";
import { useMemo } from "preact/hooks";
import { encode } from "uqr";

export function qrDataUrl(text: string): string {
  const qr = encode(text, { ecc: "M", border: 2 });
  const size = qr.size;
  let path = "";
  qr.data.forEach((row, y) => {
    row.forEach((dark, x) => {
      if (dark) path += `M${x} ${y}h1v1h-1z`;
    });
  });
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${size} ${size}" shape-rendering="crispEdges">` +
    `<rect width="${size}" height="${size}" fill="#fff"/><path d="${path}" fill="#000"/></svg>`;
  return `data:image/svg+xml;utf8,${encodeURIComponent(svg)}`;
}

export function QrCode({ text, label }: { text: string; label: string }): JSX.Element {
  const src = useMemo(() => qrDataUrl(text), [text]);
  return <img class="qr" src={src} alt={label} data-testid="qr" />;
}
