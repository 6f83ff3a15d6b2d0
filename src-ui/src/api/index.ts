export * as api from "./commands";
export { SamError, Codes, nextStep, toSamError } from "./errors";
export type { Settings, SettingKey, HetznerOptions, UiSignal, Deleted, Theme, AgentReadiness, AgentState } from "./types";
