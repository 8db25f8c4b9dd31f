// The entry point: start the client engine, then render the app.
import { render } from "preact";
import "./styles.css";
import { createClient } from "./client/client";
import { App } from "./ui/app";
import { watchNotifications, watchTheme } from "./ui/background";
import { Splash, StartFailed } from "./ui/splash";

const root = document.getElementById("app") as HTMLElement;
render(<Splash />, root);

if ("serviceWorker" in navigator && import.meta.env.PROD) {
  window.addEventListener("load", () => {
    navigator.serviceWorker.register("/sw.js").catch(() => undefined);
  });
}

try {
  const client = await createClient();
  watchTheme(client);
  watchNotifications(client);
  render(<App client={client} />, root);
} catch (err) {
  render(<StartFailed error={err instanceof Error ? err.message : String(err)} />, root);
}
