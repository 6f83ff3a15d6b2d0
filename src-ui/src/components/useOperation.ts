import { useCallback, useEffect, useReducer, useRef, useState } from "react";

import { toSamError, type SamError } from "../api";
import { idleProgress, progressReducer } from "../state/progress";

/**
 * Runs one long operation (with a progress channel) at a time and keeps its
 * steps, its error and whether it runs. Never blocks: the caller awaits.
 */
export function useOperation() {
  const [progress, dispatch] = useReducer(progressReducer, idleProgress);
  const [error, setError] = useState<SamError | null>(null);
  const [running, setRunning] = useState(false);
  const alive = useRef(true);
  useEffect(() => {
    alive.current = true;
    return () => {
      alive.current = false;
    };
  }, []);

  const run = useCallback(async <T,>(fn: (onProgress: (step: string) => void) => Promise<T>): Promise<T | undefined> => {
    setError(null);
    setRunning(true);
    dispatch({ type: "start" });
    try {
      const out = await fn((text) => alive.current && dispatch({ type: "step", text }));
      if (alive.current) dispatch({ type: "ok" });
      return out;
    } catch (e) {
      if (alive.current) {
        dispatch({ type: "failed" });
        setError(toSamError(e));
      }
      return undefined;
    } finally {
      if (alive.current) setRunning(false);
    }
  }, []);

  const reset = useCallback(() => {
    setError(null);
    dispatch({ type: "start" });
  }, []);

  return { progress, error, running, run, reset, setError };
}
