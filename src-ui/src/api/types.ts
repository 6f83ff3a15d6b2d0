// Shapes the UI uses that the Rust side does not define as types (yet): the
// setting keys and the Hetzner options. Everything else comes
// from ./gen, generated from Rust by ts-rs (src-tauri/tests/bindings.rs).
export type { Settings } from "./gen/Settings";
export type { UiSignal } from "./gen/UiSignal";
export type { Deleted } from "./gen/Deleted";
export type { Theme } from "./gen/Theme";

/** The keys `set_setting` takes. */
export type SettingKey =
  | "stale-seconds"
  | "max-nodes"
  | "max-workspaces"
  | "max-sessions"
  | "hcloud-endpoint"
  | "theme"
  | "default-image";

/** `hetzner_options`. */
export type HetznerOptions = {
  serverTypes: {
    name: string;
    description: string;
    cores: number;
    memoryGb: number;
    diskGb: number;
    architecture: string;
  }[];
  locations: { name: string; city: string; country: string }[];
  images: { name: string; description: string }[];
};

