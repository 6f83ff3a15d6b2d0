import { EditorView } from "@codemirror/view";
import { act, fireEvent, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";

import { installFake, renderWithStore } from "../testing/render";
import { FileEditor } from "./FileEditor";
import { languageOf, loadLanguage } from "./languages";

describe("languageOf", () => {
  it("picks a language pack by file name", () => {
    expect(languageOf("src/a.ts")).toBe("typescript");
    expect(languageOf("App.tsx")).toBe("tsx");
    expect(languageOf("x.mjs")).toBe("javascript");
    expect(languageOf("main.rs")).toBe("rust");
    expect(languageOf("train.py")).toBe("python");
    expect(languageOf("package.json")).toBe("json");
    expect(languageOf("README.md")).toBe("markdown");
    expect(languageOf("Makefile")).toBeNull();
  });
  it("loads packs on demand", async () => {
    expect(await loadLanguage("rust")).toBeTruthy();
    expect(await loadLanguage(null)).toBeNull();
  });
});

describe("FileEditor", () => {
  it("opens a file, tracks changes and saves with write_text_file", async () => {
    const fake = installFake();
    const onDirty = vi.fn();
    await renderWithStore(<FileEditor workspace="w-api" path="src/login.ts" active dark={false} onDirty={onDirty} />, { fake });
    await waitFor(() => expect(document.querySelector(".cm-content")?.textContent).toContain("return 200;"));
    const view = EditorView.findFromDOM(document.querySelector(".cm-editor") as HTMLElement)!;
    act(() => view.dispatch({ changes: { from: view.state.doc.length, insert: "// more\n" } }));
    expect(screen.getByTestId("save-state").textContent).toBe("Unsaved changes");
    expect(onDirty).toHaveBeenLastCalledWith(true);
    // Ctrl+S in the editor saves.
    fireEvent.keyDown(document.querySelector(".cm-content")!, { key: "s", ctrlKey: true });
    await waitFor(() => expect(screen.getByTestId("save-state").textContent).toBe("Saved"));
    expect(fake.files["w-api"]["src/login.ts"]).toBe("export function login(user: string): number {\n  return 200;\n}\n// more\n");
    expect(onDirty).toHaveBeenLastCalledWith(false);
    // Undoing back to the saved text is not a change either; the Save button follows.
    act(() => view.dispatch({ changes: { from: 0, insert: "x" } }));
    await userEvent.click(screen.getByRole("button", { name: "Save" }));
    await waitFor(() => expect(fake.callsOf("write_text_file")).toHaveLength(2));
  });

  it("explains a file that cannot be opened", async () => {
    await renderWithStore(<FileEditor workspace="w-api" path="nope.txt" active dark />);
    expect((await screen.findByRole("alert")).textContent).toContain("nope.txt does not exist.");
  });
});
