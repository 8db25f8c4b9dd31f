// Dev-only entry: the real screens over the in-memory fixture. Scenes come
// from the query string, e.g. /dev/index.html?chat=c-alice&theme=dark
//   auth=1          signed out (sign-up screen)
//   recovery=1      the recovery code screen
//   chat=<id>       open a chat (c-alice, c-club, c-ben, c-david)
//   panel=settings|info
//   theme=light|dark
//   offline=1 / connecting=1
//   verify=1        an incoming emoji verification
import { render } from "preact";
import "../src/styles.css";
import { App } from "../src/ui/app";
import { watchNotifications, watchTheme } from "../src/ui/background";
import { openConversation, panel, pendingRecovery } from "../src/ui/context";
import { createFixture } from "./fixture";

const params = new URLSearchParams(location.search);
const client = await createFixture({
  signedIn: !params.has("auth"),
  connection: params.has("offline") ? "offline" : params.has("connecting") ? "connecting" : "online",
});
const theme = params.get("theme");
if (theme === "light" || theme === "dark") client.updateSettings({ theme });
if (params.has("recovery")) pendingRecovery.value = { user: "mara@taube.example", recoveryCode: "K7QM-4XRT-PW2H-9CZD-LM3V-A8NE" };
const chat = params.get("chat");
if (chat) openConversation(client, chat);
const side = params.get("panel");
if (side === "settings") panel.value = { kind: "settings" };
if (side === "info" && chat) panel.value = { kind: "conversation", id: chat };
if (params.has("verify")) {
  (client.state.verification as { value: unknown }).value = {
    stage: "incoming",
    transaction: "t1",
    user: "ben.okafor@club.example",
    device: "dev7",
  };
}
watchTheme(client);
watchNotifications(client);
(window as unknown as { taube: unknown }).taube = client;
render(<App client={client} />, document.getElementById("app") as HTMLElement);
