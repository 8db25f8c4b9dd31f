// Other people as the server shows them: presence (as far as their privacy
// setting lets us see it), the opt-in directory, and this account's own
// privacy settings. Nothing here is end-to-end encrypted: it is what the
// server knows anyway (who is connected) or what the user chose to publish
// (a name to be found by). The server enforces every setting.
import type { DirectoryResults, Presence, Privacy, ServerInfo } from "../gen/proto";
import type { Api } from "./api";
import type { PresenceView, PrivacySettings } from "./model";

export class People {
  private domainOf: Promise<string> | null = null;

  constructor(private readonly api: Api) {}

  /** the domain of the addresses this server hosts */
  domain(): Promise<string> {
    this.domainOf ??= this.api.call<ServerInfo>("GET", "/info").then((info) => info.domain);
    return this.domainOf;
  }

  async presence(user: string): Promise<PresenceView> {
    const seen = await this.api.call<Presence>("GET", `/presence/${encodeURIComponent(user)}`);
    return { visible: seen.visible ?? false, online: seen.online ?? false, lastSeenMs: seen.last_seen_ms ?? null };
  }

  async privacy(): Promise<PrivacySettings> {
    return settingsOf(await this.api.call<Privacy>("GET", "/privacy"));
  }

  async setPrivacy(settings: PrivacySettings): Promise<PrivacySettings> {
    const body: Privacy = { presence: settings.presence, findable: settings.findable, name: settings.findable ? settings.name : "" };
    return settingsOf(await this.api.call<Privacy>("PUT", "/privacy", body));
  }

  async searchDirectory(query: string): Promise<{ user: string; name: string }[]> {
    const found = await this.api.call<DirectoryResults>("POST", "/directory/search", { query });
    return found.people;
  }
}

function settingsOf(p: Privacy): PrivacySettings {
  return { presence: p.presence ?? "contacts", findable: p.findable ?? false, name: p.name ?? "" };
}
