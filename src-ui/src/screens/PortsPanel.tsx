// Ports listening in the workspace; "Open in browser" opens a local forward.
import { useEffect, useState } from "react";

import { api, toSamError, type SamError } from "../api";
import type { Port } from "../api/gen/Port";
import { Empty, ErrorBox, Spinner } from "../components/ui";

/** How often the ports list refreshes while it is shown. */
export const PORTS_REFRESH_MS = 5000;

export function PortsPanel({ workspace }: { workspace: string }) {
  const [ports, setPorts] = useState<Port[] | null>(null);
  const [error, setError] = useState<SamError | null>(null);
  const [opened, setOpened] = useState<Record<number, string>>({});
  const [opening, setOpening] = useState<number | null>(null);
  const [openError, setOpenError] = useState<SamError | null>(null);

  useEffect(() => {
    let live = true;
    setPorts(null);
    const load = () =>
      api
        .listPorts(workspace)
        .then((p) => {
          if (!live) return;
          setPorts([...p].sort((a, b) => a.port - b.port));
          setError(null);
        })
        .catch((e) => live && setError(toSamError(e)));
    void load();
    const t = setInterval(load, PORTS_REFRESH_MS);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [workspace]);

  const open = async (port: number) => {
    setOpening(port);
    setOpenError(null);
    try {
      const url = await api.openPort(workspace, port);
      setOpened((o) => ({ ...o, [port]: url }));
    } catch (e) {
      setOpenError(toSamError(e));
    } finally {
      setOpening(null);
    }
  };

  return (
    <div className="panel-body" data-testid="ports">
      {error && <ErrorBox error={error} compact />}
      {!ports && !error && <Spinner label="Looking for listening ports…" />}
      {ports && ports.length === 0 && (
        <Empty title="No ports listening">Start a server in the workspace (say on port 3000); it shows up here.</Empty>
      )}
      {openError && <ErrorBox error={openError} compact />}
      {ports && ports.length > 0 && (
        <ul className="ports">
          {ports.map((p) => (
            <li key={`${p.port}/${p.protocol}`} className="port-row">
              <span className="mono">
                {p.port}/{p.protocol}
              </span>
              <button type="button" className="btn small" onClick={() => void open(p.port)} disabled={opening === p.port}>
                {opening === p.port ? "Opening…" : "Open in browser"}
              </button>
              {opened[p.port] && (
                <div className="muted small port-url">
                  Opened <span className="mono">{opened[p.port]}</span>
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
