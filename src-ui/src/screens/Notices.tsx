// Short notices (a node went stale, an agent waits, work finished in the
// background). Each can lead to where it happened; info ones fade on their own.
import { useEffect } from "react";

import type { Notice } from "../state/app";
import { useStore } from "../state/store";

export const NOTICE_MS = 8000;

export function Notices() {
  const { state } = useStore();
  return (
    <div className="notices" aria-live="polite">
      {state.notices.map((n) => (
        <NoticeView key={n.id} n={n} />
      ))}
    </div>
  );
}

function NoticeView({ n }: { n: Notice }) {
  const { actions, dispatch } = useStore();
  useEffect(() => {
    if (n.tone !== "info") return;
    const t = setTimeout(() => dispatch({ type: "notice/dismiss", id: n.id }), NOTICE_MS);
    return () => clearTimeout(t);
  }, [n, dispatch]);
  return (
    <div className={`notice tone-${n.tone}`} role={n.tone === "info" ? "status" : "alert"}>
      <span>{n.text}</span>
      {n.route && (
        <button
          type="button"
          className="btn small"
          onClick={() => {
            actions.navigate(n.route!);
            dispatch({ type: "notice/dismiss", id: n.id });
          }}
        >
          Show
        </button>
      )}
      <button type="button" className="icon-btn" aria-label="Dismiss" onClick={() => dispatch({ type: "notice/dismiss", id: n.id })}>
        ×
      </button>
    </div>
  );
}
