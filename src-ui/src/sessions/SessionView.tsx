// One agent session tab: the chat (streamed markdown, collapsed thoughts, tool
// calls with diffs, the plan, permission prompts), the prompt box, Cancel while a
// turn runs, "Take over" when another client holds the session, and — when a
// built-in agent ended in error — its next steps ("Add key", "Log in").
import {
  memo,
  useCallback,
  useEffect,
  useLayoutEffect,
  useMemo,
  useReducer,
  useRef,
  useState,
  type FormEvent,
  type MouseEvent,
  type ReactNode,
} from "react";

import { api, Codes, toSamError, type SamError } from "../api";
import type { AgentSession } from "../api/gen/AgentSession";
import type { SessionFrame } from "../api/gen/SessionFrame";
import type { StopReason } from "../api/gen/StopReason";
import { ErrorBox, InlineCode, Spinner } from "../components/ui";
import { stopReasonText } from "../state/sessions";
import { useStore } from "../state/store";
import { SessionFix, type AgentActions } from "./AgentSetup";
import { diffStats, lineDiff, withContext } from "./diff";
import { emptyChat, foldFrames, openPermissions, type ChatItem, type ChatState, type PlanEntry, type ToolContent } from "./fold";
import { renderMarkdown } from "./markdown";

type ChatAction = { type: "frames"; frames: SessionFrame[] };

function chatReducer(s: ChatState, a: ChatAction): ChatState {
  return foldFrames(s, a.frames);
}

export { stopReasonText };

/**
 * One session. `actions` (from the workspace screen) let a session that ended
 * because its agent wants a key or a login offer "Log in" and "Start a new session".
 */
export function SessionView({
  workspace,
  session,
  active,
  actions,
}: {
  workspace: string;
  session: string;
  active: boolean;
  actions?: AgentActions;
}) {
  const [chat, dispatch] = useReducer(chatReducer, emptyChat);
  // "ended": the node refused to attach because the session is over.
  const [phase, setPhase] = useState<"attaching" | "attached" | "held" | "ended" | "error">("attaching");
  const [error, setError] = useState<SamError | null>(null);
  const [takeover, setTakeover] = useState(false);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let disposed = false;
    let queue: SessionFrame[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Frames are folded in batches (about one per frame of the screen), so a fast
    // stream of chunks never makes the window stutter.
    const flush = () => {
      timer = undefined;
      const frames = queue;
      queue = [];
      if (!disposed && frames.length) dispatch({ type: "frames", frames });
    };
    setPhase("attaching");
    setError(null);
    api
      .attachSession(workspace, session, takeover, (f) => {
        if (disposed) return;
        queue.push(f);
        if (timer === undefined) timer = setTimeout(flush, 16);
      })
      .then(() => !disposed && setPhase("attached"))
      .catch((e) => {
        if (disposed) return;
        const err = toSamError(e);
        if (err.code === Codes.sessionAlreadyAttached) {
          setPhase("held");
        } else if (err.code === Codes.sessionNotRunning) {
          setPhase("ended");
        } else {
          setPhase("error");
          setError(err);
        }
      });
    return () => {
      disposed = true;
      clearTimeout(timer);
      api.detachSession(session).catch(() => {});
    };
  }, [workspace, session, takeover, attempt]);

  // When the prompts shown here are all answered, the sidebar and the tab stop
  // saying that the agent waits (even before the control plane's event arrives).
  const { state: app, dispatch: appDispatch } = useStore();
  const waitingHere = session in app.waiting;
  const open = openPermissions(chat).length;
  const hadOpen = useRef(false);
  useEffect(() => {
    if (open > 0) hadOpen.current = true;
    else if (hadOpen.current) {
      hadOpen.current = false;
      if (waitingHere) appDispatch({ type: "permission/resolved", sessionId: session });
    }
  }, [waitingHere, open, session, appDispatch]);

  const takeOver = () => {
    setTakeover(true);
    setAttempt((a) => a + 1);
  };

  const [sendError, setSendError] = useState<SamError | null>(null);
  const send = async (frame: Parameters<typeof api.sendSessionFrame>[1]) => {
    setSendError(null);
    try {
      await api.sendSessionFrame(session, frame);
      return true;
    } catch (e) {
      setSendError(toSamError(e));
      return false;
    }
  };

  const sendRef = useRef(send);
  sendRef.current = send;
  const onAnswer = useCallback(
    (requestId: string | number, optionId: string) => sendRef.current({ type: "permission.response", requestId, optionId }),
    [],
  );

  const takenAway = chat.detached === "takeover";
  const canPrompt = phase === "attached" && !chat.stopped && !takenAway;

  // How an ended session ended (its agent, label and error), from the node's list.
  const ended = phase === "ended" || chat.stopped === "error";
  const info = useEndedSession(workspace, session, ended);
  const endedInError = chat.stopped === "error" || (phase === "ended" && info.session?.status === "error");
  const fix = endedInError && info.session?.agent ? <SessionFix workspace={workspace} session={info.session} actions={actions} /> : null;

  return (
    <div className="session" data-session={session} data-running={chat.running ? "true" : "false"}>
      {phase === "held" && (
        <div className="ask" role="alert" data-testid="takeover">
          <p>
            <strong>This session is open in another window or on another computer.</strong>
          </p>
          <p className="muted">Taking it over moves it here; the other side sees that it was taken over.</p>
          <button type="button" className="btn primary" onClick={takeOver}>
            Take over
          </button>
        </div>
      )}
      {takenAway && (
        <div className="ask" role="alert" data-testid="taken-away">
          <p>
            <strong>Another window took over this session.</strong>
          </p>
          <button type="button" className="btn primary" onClick={takeOver}>
            Take it back
          </button>
        </div>
      )}
      {phase === "error" && error && (
        <div className="pad">
          <ErrorBox error={error} onRetry={() => setAttempt((a) => a + 1)} />
        </div>
      )}
      <ChatLog
        chat={chat}
        active={active}
        onAnswer={onAnswer}
        canAnswer={canPrompt}
        empty={phase !== "ended"}
        footer={
          phase === "ended" ? (
            <>
              <EndedSession info={info} />
              {fix}
            </>
          ) : (
            fix
          )
        }
      />
      {phase === "attaching" && chat.items.length === 0 && (
        <div className="pad">
          <Spinner label="Loading the conversation…" />
        </div>
      )}
      {chat.notice && <div className="notice-line warn">{chat.notice}</div>}
      {sendError && (
        <div className="pad">
          <ErrorBox error={sendError} compact />
        </div>
      )}
      <Composer
        disabled={!canPrompt}
        running={chat.running}
        stopped={chat.stopped ?? (phase === "ended" ? (info.session?.stopReason ?? "agent_exit") : null)}
        active={active}
        onSend={(text) => send({ type: "prompt", text })}
        onCancel={() => void send({ type: "cancel" })}
      />
    </div>
  );
}

/** The session as the node lists it, looked up once it has ended. */
function useEndedSession(workspace: string, session: string, ended: boolean) {
  const [found, setFound] = useState<AgentSession | null>(null);
  const [error, setError] = useState<SamError | null>(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    if (!ended) return;
    let live = true;
    setError(null);
    api
      .listSessions(workspace)
      .then((list) => {
        if (!live) return;
        const s = list.find((x) => x.id === session);
        if (s) setFound(s);
        else setError(toSamError({ code: Codes.notFound, message: "The node no longer lists this session.", hint: "Close this tab." }));
      })
      .catch((e) => live && setError(toSamError(e)));
    return () => {
      live = false;
    };
  }, [workspace, session, ended, attempt]);
  return { session: found, error, retry: () => setAttempt((a) => a + 1) };
}

/** A session that was over before this window attached: how it ended, in words. */
function EndedSession({ info }: { info: ReturnType<typeof useEndedSession> }) {
  const s = info.session;
  return (
    <div className="pad" data-testid="session-ended">
      {s ? (
        s.status === "error" ? (
          <div className="error-box compact" role="alert" data-kind="error">
            <div className="error-message">
              <InlineCode text={s.error ?? "The session ended with an error."} />
            </div>
          </div>
        ) : (
          <p className="muted">{s.stopReason ? stopReasonText(s.stopReason) : "This session has ended."}</p>
        )
      ) : info.error ? (
        <ErrorBox error={info.error} onRetry={info.retry} compact />
      ) : (
        <Spinner label="Looking up how the session ended…" />
      )}
    </div>
  );
}

function ChatLog({
  chat,
  active,
  onAnswer,
  canAnswer,
  empty = true,
  footer,
}: {
  chat: ChatState;
  active: boolean;
  onAnswer: (requestId: string | number, optionId: string) => Promise<boolean>;
  canAnswer: boolean;
  /** Whether to say "No messages yet" when there are none. */
  empty?: boolean;
  /** What goes under the conversation (how it ended, the next steps). */
  footer?: ReactNode;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  useLayoutEffect(() => {
    const el = ref.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [chat.items, active]);
  const onScroll = () => {
    const el = ref.current;
    if (el) stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  };
  // Links in messages never navigate the app's window.
  const onClick = (e: MouseEvent) => {
    const a = (e.target as HTMLElement).closest("a");
    if (a) e.preventDefault();
  };
  const lastIndex = chat.items.length - 1;
  return (
    <div className="chat" ref={ref} onScroll={onScroll} onClick={onClick} data-testid="chat" aria-live="polite">
      {empty && chat.items.length === 0 && !chat.running && <div className="muted pad">No messages yet. Ask the agent something below.</div>}
      {chat.items.map((item, i) => (
        <ChatRow
          key={item.id + ":" + item.kind}
          item={item}
          live={chat.running && i === lastIndex}
          ended={chat.stopped !== null}
          onAnswer={onAnswer}
          canAnswer={canAnswer && !chat.stopped}
        />
      ))}
      {chat.running && openPermissions(chat).length > 0 ? (
        <div className="pad muted small">The agent waits for your answer above.</div>
      ) : (
        chat.running &&
        chat.items[lastIndex]?.kind !== "agent" &&
        chat.items[lastIndex]?.kind !== "thought" && (
          <div className="pad">
            <Spinner label="The agent is working…" />
          </div>
        )
      )}
      {footer}
    </div>
  );
}

const ChatRow = memo(function ChatRow({
  item,
  live,
  ended,
  onAnswer,
  canAnswer,
}: {
  item: ChatItem;
  live: boolean;
  /** The session is over (an error then needs a new session, not a retry). */
  ended: boolean;
  onAnswer: (requestId: string | number, optionId: string) => Promise<boolean>;
  canAnswer: boolean;
}) {
  switch (item.kind) {
    case "user":
      return (
        <div className="msg user" data-kind="user">
          <div className="who">You</div>
          <div className="text pre">{item.text}</div>
        </div>
      );
    case "agent":
      return (
        <div className="msg agent" data-kind="agent">
          <div className="who">Agent</div>
          <Markdown text={item.text} />
        </div>
      );
    case "thought":
      return (
        <details className="thought" data-kind="thought">
          <summary>{live ? "Thinking…" : "Thought"}</summary>
          <div className="pre muted">{item.text}</div>
        </details>
      );
    case "tool":
      return <ToolCard item={item} />;
    case "plan":
      return <Plan entries={item.entries} />;
    case "permission":
      return <PermissionCard item={item} onAnswer={onAnswer} canAnswer={canAnswer} />;
    case "turn_end":
      return (
        <div className="turn-end muted small" data-kind="turn_end">
          {item.stopReason === "cancelled" ? "Turn cancelled." : `Turn ended: ${item.stopReason.replace(/_/g, " ")}.`}
        </div>
      );
    case "error":
      return (
        <div className="error-box compact" role="alert" data-kind="error">
          <div className="error-message">
            <InlineCode text={item.message} />
          </div>
          <div className="error-next">
            <span className="muted">Next step: </span>
            {ended
              ? "this session has ended; start a new one with “+ Agent”."
              : "send the prompt again, or start a new session if it keeps failing."}
          </div>
        </div>
      );
    case "stopped":
      return (
        <div className="turn-end muted" data-kind="stopped">
          {stopReasonText(item.reason)}
        </div>
      );
  }
});

function Markdown({ text }: { text: string }) {
  const html = useMemo(() => renderMarkdown(text), [text]);
  return <div className="markdown" dangerouslySetInnerHTML={{ __html: html }} />;
}

const kindIcon: Record<string, string> = {
  read: "📄",
  edit: "✎",
  delete: "🗑",
  move: "⇄",
  search: "⌕",
  execute: "▶",
  think: "💭",
  fetch: "⇣",
  switch_mode: "⇆",
  other: "⚙",
};

function ToolCard({ item }: { item: Extract<ChatItem, { kind: "tool" }> }) {
  const hasDiff = item.content.some((c) => c.type === "diff");
  return (
    <details className={`tool status-${item.status}`} open={hasDiff || item.status === "failed"} data-kind="tool">
      <summary>
        <span className="tool-icon" aria-hidden="true">
          {kindIcon[item.toolKind] ?? kindIcon.other}
        </span>
        <span className="tool-title">{item.title}</span>
        <span className={`pill status-${item.status}`}>{item.status.replace(/_/g, " ")}</span>
      </summary>
      {item.locations.length > 0 && <div className="mono small muted">{item.locations.join(", ")}</div>}
      <ToolContents content={item.content} />
    </details>
  );
}

function ToolContents({ content }: { content: ToolContent[] }) {
  return (
    <>
      {content.map((c, i) =>
        c.type === "diff" ? (
          <DiffView key={i} path={c.path} oldText={c.oldText} newText={c.newText} />
        ) : c.type === "text" ? (
          <pre key={i} className="tool-text">
            {c.text}
          </pre>
        ) : (
          <div key={i} className="muted small">
            Output in terminal {c.terminalId}
          </div>
        ),
      )}
    </>
  );
}

export function DiffView({ path, oldText, newText }: { path: string; oldText: string | null; newText: string }) {
  const lines = useMemo(() => lineDiff(oldText, newText), [oldText, newText]);
  const rows = useMemo(() => withContext(lines, 3), [lines]);
  const st = diffStats(lines);
  return (
    <div className="diff" data-testid="diff">
      <div className="diff-head">
        <span className="mono">{path}</span>
        {oldText === null && <span className="pill">new file</span>}
        <span className="add-n">+{st.added}</span>
        <span className="del-n">−{st.removed}</span>
      </div>
      <table className="diff-body">
        <tbody>
          {rows.map((r, i) =>
            r.op === "skip" ? (
              <tr key={i} className="skip">
                <td colSpan={3}>⋯ {r.count} unchanged lines</td>
              </tr>
            ) : (
              <tr key={i} className={r.op}>
                <td className="ln">{r.a ?? ""}</td>
                <td className="ln">{r.b ?? ""}</td>
                <td className="code">
                  <span className="sign">{r.op === "add" ? "+" : r.op === "del" ? "−" : " "}</span>
                  {r.text}
                </td>
              </tr>
            ),
          )}
        </tbody>
      </table>
    </div>
  );
}

const planIcon: Record<string, string> = { completed: "☑", in_progress: "◐", pending: "☐" };

function Plan({ entries }: { entries: PlanEntry[] }) {
  return (
    <div className="plan" data-kind="plan">
      <div className="who">Plan</div>
      <ul>
        {entries.map((e, i) => (
          <li key={i} className={`plan-${e.status}`} data-status={e.status}>
            <span aria-hidden="true">{planIcon[e.status] ?? "☐"}</span> {e.content}
          </li>
        ))}
      </ul>
    </div>
  );
}

function PermissionCard({
  item,
  onAnswer,
  canAnswer,
}: {
  item: Extract<ChatItem, { kind: "permission" }>;
  onAnswer: (requestId: string | number, optionId: string) => Promise<boolean>;
  canAnswer: boolean;
}) {
  const [sent, setSent] = useState<string | null>(null);
  const chosen = item.resolved?.optionId ?? null;
  const chosenName = item.options.find((o) => o.optionId === chosen)?.name ?? chosen;
  return (
    <div className={`permission${item.resolved ? " resolved" : ""}`} data-kind="permission" role={item.resolved ? undefined : "alert"}>
      <div className="who">{item.resolved ? "Permission" : "The agent asks for permission"}</div>
      <div className="tool-title">
        <span aria-hidden="true">{kindIcon[item.toolKind] ?? kindIcon.other}</span> {item.title}
      </div>
      <ToolContents content={item.content} />
      {item.resolved ? (
        <div className="muted small" data-testid="permission-answer">
          {item.resolved.outcome === "cancelled" ? "Cancelled." : `Answered: ${chosenName}.`}
        </div>
      ) : (
        <div className="actions left">
          {item.options.map((o) => (
            <button
              key={o.optionId}
              type="button"
              className={`btn small ${o.kind.startsWith("allow") ? "primary" : o.kind.startsWith("reject") ? "danger-outline" : ""}`}
              disabled={!canAnswer || sent !== null}
              onClick={async () => {
                setSent(o.optionId);
                if (!(await onAnswer(item.requestId, o.optionId))) setSent(null);
              }}
            >
              {o.name}
            </button>
          ))}
          {sent && <Spinner label="Sending…" />}
        </div>
      )}
    </div>
  );
}

function Composer({
  disabled,
  running,
  stopped,
  active,
  onSend,
  onCancel,
}: {
  disabled: boolean;
  running: boolean;
  stopped: StopReason | null;
  active: boolean;
  onSend: (text: string) => Promise<boolean>;
  onCancel: () => void;
}) {
  const [text, setText] = useState("");
  const [sending, setSending] = useState(false);
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (active && !disabled) ref.current?.focus();
  }, [active, disabled]);
  const submit = async (e?: FormEvent) => {
    e?.preventDefault();
    const t = text.trim();
    if (!t || disabled || sending) return;
    setSending(true);
    if (await onSend(t)) setText("");
    setSending(false);
  };
  return (
    <form className="composer" onSubmit={submit}>
      <textarea
        ref={ref}
        value={text}
        rows={3}
        disabled={disabled}
        aria-label="Message to the agent"
        placeholder={stopped ? "This session has ended." : running ? "The agent is working; you can queue the next prompt." : "Ask the agent… (Enter sends, Shift+Enter for a new line)"}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
            e.preventDefault();
            void submit();
          }
        }}
      />
      <div className="composer-actions">
        {running && (
          <button type="button" className="btn" onClick={onCancel} disabled={disabled}>
            Cancel
          </button>
        )}
        <button type="submit" className="btn primary" disabled={disabled || sending || !text.trim()}>
          Send
        </button>
      </div>
    </form>
  );
}
