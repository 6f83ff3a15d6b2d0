// The workspace's project folder as a tree; folders load when opened.
import { useCallback, useEffect, useState } from "react";

import { api, toSamError, type SamError } from "../api";
import type { FileEntry } from "../api/gen/FileEntry";
import { ErrorBox, Spinner } from "../components/ui";

export function childPath(parent: string, name: string): string {
  return parent ? `${parent}/${name}` : name;
}

/** Folders first, then files, each by name (case-insensitive, numbers in order). */
export function sortEntries(entries: FileEntry[]): FileEntry[] {
  const rank = (e: FileEntry) => (e.kind === "dir" ? 0 : 1);
  return [...entries].sort(
    (a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: "base" }),
  );
}

type Folder = { status: "loading" | "ready" | "error"; entries: FileEntry[]; error: SamError | null };

export function FilesPanel({ workspace, onOpen }: { workspace: string; onOpen: (path: string) => void }) {
  const [folders, setFolders] = useState<Record<string, Folder>>({});
  const [open, setOpen] = useState<Set<string>>(() => new Set([""]));

  const load = useCallback(
    (path: string) => {
      setFolders((f) => ({ ...f, [path]: { status: "loading", entries: f[path]?.entries ?? [], error: null } }));
      api
        .listFolder(workspace, path)
        .then((entries) => setFolders((f) => ({ ...f, [path]: { status: "ready", entries: sortEntries(entries), error: null } })))
        .catch((e) => setFolders((f) => ({ ...f, [path]: { status: "error", entries: [], error: toSamError(e) } })));
    },
    [workspace],
  );

  useEffect(() => {
    setFolders({});
    setOpen(new Set([""]));
    load("");
  }, [load]);

  const toggle = (path: string) => {
    setOpen((o) => {
      const n = new Set(o);
      if (n.has(path)) n.delete(path);
      else {
        n.add(path);
        if (!folders[path] || folders[path].status === "error") load(path);
      }
      return n;
    });
  };

  const refresh = () => {
    for (const p of open) load(p);
  };

  const render = (path: string, depth: number) => {
    const f = folders[path];
    if (!f || (f.status === "loading" && f.entries.length === 0)) {
      return (
        <li className="file-row muted" style={{ paddingLeft: 8 + depth * 12 }}>
          <Spinner label="Loading…" />
        </li>
      );
    }
    if (f.status === "error" && f.error) {
      return (
        <li style={{ paddingLeft: 8 + depth * 12 }}>
          <ErrorBox error={f.error} onRetry={() => load(path)} compact />
        </li>
      );
    }
    if (f.entries.length === 0) {
      return (
        <li className="file-row muted small" style={{ paddingLeft: 8 + depth * 12 }}>
          empty folder
        </li>
      );
    }
    return f.entries.map((e) => {
      const p = childPath(path, e.name);
      const isDir = e.kind === "dir";
      return (
        <li key={p} role="treeitem" aria-expanded={isDir ? open.has(p) : undefined}>
          <button
            type="button"
            className="file-row"
            style={{ paddingLeft: 8 + depth * 12 }}
            onClick={() => (isDir ? toggle(p) : onOpen(p))}
            title={p}
            data-path={p}
          >
            <span className="file-icon" aria-hidden="true">
              {isDir ? (open.has(p) ? "▾" : "▸") : e.kind === "symlink" ? "↪" : "·"}
            </span>
            <span className="ellipsis">{e.name}</span>
          </button>
          {isDir && open.has(p) && <ul role="group">{render(p, depth + 1)}</ul>}
        </li>
      );
    });
  };

  return (
    <div className="panel-body" data-testid="files">
      <div className="panel-tools">
        <span className="muted small">Project folder</span>
        <button type="button" className="icon-btn" onClick={refresh} title="Refresh" aria-label="Refresh files">
          ⟳
        </button>
      </div>
      <ul className="file-tree" role="tree">
        {render("", 0)}
      </ul>
    </div>
  );
}
