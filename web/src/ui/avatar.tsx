// A round picture, or initials on a colour derived from the address.
import type { JSX } from "preact";
import { hueOf, initials } from "./format";

interface AvatarProps {
  /** the address (or conversation id) the colour is derived from */
  seed: string;
  name: string;
  src: string | null | undefined;
  size?: "xs" | "s" | "m" | "l" | "xl";
  group?: boolean;
}

export function Avatar({ seed, name, src, size = "m", group }: AvatarProps): JSX.Element {
  if (src) {
    return <img class={`avatar avatar--${size}`} src={src} alt="" loading="lazy" decoding="async" />;
  }
  const hue = hueOf(seed);
  return (
    <span
      class={`avatar avatar--${size}${group ? " avatar--group" : ""}`}
      style={{ backgroundColor: `hsl(${hue} 42% 36%)` }}
      aria-hidden="true"
    >
      {initials(name)}
    </span>
  );
}
