// Which CodeMirror language a file gets, by its name. Language packs load on
// demand (their own chunks), so the first screen stays small.
import type { Extension } from "@codemirror/state";

export type LanguageId = "javascript" | "typescript" | "jsx" | "tsx" | "rust" | "python" | "json" | "markdown" | null;

export function languageOf(path: string): LanguageId {
  const name = path.split("/").pop()?.toLowerCase() ?? "";
  const ext = name.includes(".") ? name.slice(name.lastIndexOf(".") + 1) : "";
  switch (ext) {
    case "js":
    case "mjs":
    case "cjs":
      return "javascript";
    case "jsx":
      return "jsx";
    case "ts":
    case "mts":
    case "cts":
      return "typescript";
    case "tsx":
      return "tsx";
    case "rs":
      return "rust";
    case "py":
    case "pyi":
      return "python";
    case "json":
    case "jsonc":
      return "json";
    case "md":
    case "markdown":
      return "markdown";
    default:
      return null;
  }
}

export async function loadLanguage(id: LanguageId): Promise<Extension | null> {
  switch (id) {
    case "javascript":
    case "jsx":
    case "typescript":
    case "tsx": {
      const { javascript } = await import("@codemirror/lang-javascript");
      return javascript({ typescript: id === "typescript" || id === "tsx", jsx: id === "jsx" || id === "tsx" });
    }
    case "rust":
      return (await import("@codemirror/lang-rust")).rust();
    case "python":
      return (await import("@codemirror/lang-python")).python();
    case "json":
      return (await import("@codemirror/lang-json")).json();
    case "markdown":
      return (await import("@codemirror/lang-markdown")).markdown();
    default:
      return null;
  }
}
