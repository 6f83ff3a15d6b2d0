import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";

import type { Event } from "../api/gen/Event";
import { installFake, renderWithStore } from "../testing/render";
import { mergeEvents } from "./EventsList";
import { childPath, FilesPanel, sortEntries } from "./FilesPanel";

describe("file tree helpers", () => {
  it("sorts folders first, then names naturally", () => {
    const e = (name: string, kind: "file" | "dir") => ({ name, kind, size: 0, modifiedAt: "" });
    expect(sortEntries([e("b.ts", "file"), e("src", "dir"), e("a10.ts", "file"), e("a9.ts", "file"), e(".git", "dir")]).map((x) => x.name)).toEqual([
      ".git",
      "src",
      "a9.ts",
      "a10.ts",
      "b.ts",
    ]);
    expect(childPath("", "src")).toBe("src");
    expect(childPath("src", "a.ts")).toBe("src/a.ts");
  });
});

describe("FilesPanel", () => {
  it("loads folders when opened and opens files", async () => {
    const fake = installFake();
    const onOpen = vi.fn();
    await renderWithStore(<FilesPanel workspace="w-api" onOpen={onOpen} />, { fake });
    await userEvent.click(await screen.findByText("src"));
    await userEvent.click(await screen.findByText("login.ts"));
    expect(onOpen).toHaveBeenCalledWith("src/login.ts");
    expect(fake.callsOf("list_folder").map((c) => (c.args as { path: string }).path)).toEqual(["", "src"]);
    await userEvent.click(screen.getByText("util"));
    expect(await screen.findByText("strings.ts")).toBeTruthy();
  });

  it("shows a folder that cannot be read, with a retry", async () => {
    const fake = installFake();
    fake.files["w-api"] = {};
    await renderWithStore(<FilesPanel workspace="w-gone" onOpen={() => {}} />, { fake });
    await waitFor(() => expect(screen.getByRole("alert").textContent).toContain("The workspace has no project folder."));
    expect(screen.getByRole("button", { name: "Try again" })).toBeTruthy();
  });
});

describe("mergeEvents", () => {
  const ev = (id: string, createdAt: string): Event => ({ id, type: "t", level: "info", nodeId: "n", message: id, createdAt });
  it("keeps newest first without duplicates, up to a maximum", () => {
    const cur = [ev("2", "2026-01-02T00:00:00Z"), ev("1", "2026-01-01T00:00:00Z")];
    expect(mergeEvents(cur, [ev("3", "2026-01-03T00:00:00Z"), ev("2", "2026-01-02T00:00:00Z")]).map((e) => e.id)).toEqual(["3", "2", "1"]);
    expect(mergeEvents(cur, [], 1).map((e) => e.id)).toEqual(["2"]);
  });
});
