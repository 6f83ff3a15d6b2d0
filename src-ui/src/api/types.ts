// Shapes the UI uses that the Rust side does not define as types (yet): the
// setting keys. Everything else comes
// from ./gen, generated from Rust by ts-rs (src-tauri/tests/bindings.rs).
export type { Settings } from "./gen/Settings";
export type { UiSignal } from "./gen/UiSignal";
export type { Deleted } from "./gen/Deleted";
export type { Theme } from "./gen/Theme";
export type { HetznerOptions } from "./gen/HetznerOptions";
export type { AgentReadiness } from "./gen/AgentReadiness";
export type { AgentState } from "./gen/AgentState";

/** The keys `set_setting` takes. */
export type SettingKey =
  | "stale-seconds"
  | "max-nodes"
  | "max-workspaces"
  | "max-sessions"
  | "hcloud-endpoint"
  | "theme"
  | "default-image"
  | "auto-local";
