import { lazy, Suspense, useEffect, useState } from "react";

import { Spinner } from "./components/ui";

import { AddNodeDialog } from "./screens/AddNodeDialog";
import { NodeScreen } from "./screens/NodeScreen";
import { NodesScreen } from "./screens/NodesScreen";
import { Notices } from "./screens/Notices";
import { SettingsScreen } from "./screens/SettingsScreen";
import { Sidebar } from "./screens/Sidebar";
import { StoreProvider, useDarkMode, useStore } from "./state/store";

// The workspace screen carries xterm.js and CodeMirror: loaded when first opened.
const WorkspaceScreen = lazy(() => import("./screens/WorkspaceScreen").then((m) => ({ default: m.WorkspaceScreen })));

export function App() {
  return (
    <StoreProvider>
      <Shell />
    </StoreProvider>
  );
}

function Shell() {
  const { state } = useStore();
  const dark = useDarkMode();
  const [addNode, setAddNode] = useState(false);

  useEffect(() => {
    document.documentElement.dataset.theme = dark ? "dark" : "light";
  }, [dark]);

  const r = state.route;
  return (
    <div className="app">
      <Sidebar onAddNode={() => setAddNode(true)} />
      <main className="main">
        <Notices />
        <div className="main-content">
          {r.name === "nodes" && <NodesScreen onAddNode={() => setAddNode(true)} />}
          {r.name === "node" && <NodeScreen key={r.nodeId} nodeId={r.nodeId} />}
          {r.name === "workspace" && (
            <Suspense fallback={<Spinner label="Opening the workspace…" />}>
              <WorkspaceScreen key={r.workspaceId} nodeId={r.nodeId} workspaceId={r.workspaceId} />
            </Suspense>
          )}
          {r.name === "settings" && <SettingsScreen />}
        </div>
      </main>
      {addNode && <AddNodeDialog onClose={() => setAddNode(false)} />}
    </div>
  );
}
