// A node's or a workspace's events: newest first, live ones added as they come.
import { useEffect, useRef, useState } from "react";

import { toSamError, type SamError } from "../api";
import type { Event } from "../api/gen/Event";
import { Empty, ErrorBox, Spinner } from "../components/ui";
import { useStore } from "../state/store";
import { clock } from "../state/time";

/** Newest first, without duplicates (live events may repeat a loaded one). */
export function mergeEvents(current: Event[], incoming: Event[], max = 200): Event[] {
  const seen = new Set<string>();
  const all = [...incoming, ...current].filter((e) => (seen.has(e.id) ? false : (seen.add(e.id), true)));
  all.sort((a, b) => (a.createdAt === b.createdAt ? b.id.localeCompare(a.id) : b.createdAt.localeCompare(a.createdAt)));
  return all.slice(0, max);
}

export function EventsList({
  load,
  matches,
  reloadKey,
}: {
  load: () => Promise<Event[]>;
  matches: (nodeId: string, e: Event) => boolean;
  reloadKey: string;
}) {
  const { actions } = useStore();
  const [events, setEvents] = useState<Event[] | null>(null);
  const [error, setError] = useState<SamError | null>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    let live = true;
    setError(null);
    load()
      .then((evs) => live && setEvents((cur) => mergeEvents(cur ?? [], evs)))
      .catch((e) => live && setError(toSamError(e)));
    return () => {
      live = false;
    };
    // `load` changes identity every render; reloadKey says when it means something else.
  }, [reloadKey, tick]);

  useEffect(() => {
    setEvents(null);
  }, [reloadKey]);

  const matchesRef = useRef(matches);
  matchesRef.current = matches;
  useEffect(
    () =>
      actions.onEvent((nodeId, e) => {
        if (matchesRef.current(nodeId, e)) setEvents((cur) => mergeEvents(cur ?? [], [e]));
      }),
    [actions],
  );

  if (error && !events) return <ErrorBox error={error} onRetry={() => setTick((t) => t + 1)} compact />;
  if (!events) return <Spinner label="Loading events…" />;
  if (events.length === 0) return <Empty title="No events yet" />;
  return (
    <ol className="events" data-testid="events">
      {events.map((e) => (
        <li key={e.id} className={`event level-${e.level}`}>
          <span className="event-time mono">{clock(e.createdAt)}</span>
          <span className={`event-level level-${e.level}`}>{e.level}</span>
          <span className="event-type mono">{e.type}</span>
          <span className="event-msg">{e.message}</span>
        </li>
      ))}
    </ol>
  );
}
