// Small building blocks shared by the screens.
import { cloneElement, isValidElement, useEffect, useId, useRef, type ReactElement, type ReactNode } from "react";

import { nextStep, type SamError } from "../api";
import type { Confirmation } from "../state/confirm";
import type { Tone } from "../state/health";
import type { Progress } from "../state/progress";
import { shortcuts } from "../state/tabs";

export function Badge({ tone, label, title }: { tone: Tone; label: string; title?: string }) {
  return (
    <span className={`badge tone-${tone}`} title={title} data-tone={tone}>
      <span className="dot" aria-hidden="true" />
      {label}
    </span>
  );
}

export function Dot({ tone, title }: { tone: Tone; title?: string }) {
  return <span className={`dot tone-${tone}`} title={title} role="img" aria-label={title} />;
}

export function Spinner({ label }: { label?: string }) {
  return (
    <span className="spinner-wrap" role="status">
      <span className="spinner" aria-hidden="true" />
      {label && <span className="muted">{label}</span>}
    </span>
  );
}

/** An error in words, with the next step and, when it helps, a retry. */
export function ErrorBox({
  error,
  onRetry,
  compact,
}: {
  error: Pick<SamError, "code" | "message" | "hint">;
  onRetry?: () => void;
  compact?: boolean;
}) {
  return (
    <div className={`error-box${compact ? " compact" : ""}`} role="alert" data-code={error.code}>
      <div className="error-message">{error.message}</div>
      <div className="error-next">
        <span className="muted">Next step: </span>
        {nextStep(error)}
      </div>
      {onRetry && (
        <button type="button" className="btn small" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <div className="empty-title">{title}</div>
      {children && <div className="empty-body">{children}</div>}
    </div>
  );
}

/** A long operation's dialog footer: Cancel and the action until it is done, then Close. */
export function OperationFooter({
  done,
  running,
  onClose,
  action,
}: {
  done: boolean;
  running: boolean;
  onClose: () => void;
  action: ReactNode;
}) {
  return done ? (
    <button type="button" className="btn primary" onClick={onClose}>
      Close
    </button>
  ) : (
    <>
      <button type="button" className="btn" onClick={onClose} disabled={running}>
        Cancel
      </button>
      {action}
    </>
  );
}

/** A modal dialog: focus moves in, Escape closes (unless busy), the page behind is inert to the mouse. */
export function Dialog({
  title,
  onClose,
  children,
  footer,
  wide,
  busy,
  testId,
}: {
  title: string;
  onClose: () => void;
  children: ReactNode;
  footer?: ReactNode;
  wide?: boolean;
  busy?: boolean;
  testId?: string;
}) {
  const id = useId();
  const ref = useRef<HTMLDivElement>(null);
  const busyRef = useRef(busy);
  busyRef.current = busy;
  const closeRef = useRef(onClose);
  closeRef.current = onClose;
  useEffect(() => {
    const prev = document.activeElement as HTMLElement | null;
    const first = ref.current?.querySelector<HTMLElement>("input, select, textarea, button:not(.dialog-x)");
    first?.focus();
    const key = (e: KeyboardEvent) => {
      if (e.key === "Escape" && !busyRef.current) {
        e.stopPropagation();
        closeRef.current();
      }
    };
    window.addEventListener("keydown", key);
    return () => {
      window.removeEventListener("keydown", key);
      prev?.focus?.();
    };
  }, []);
  return (
    <div className="overlay">
      <div
        className={`dialog${wide ? " wide" : ""}`}
        role="dialog"
        aria-modal="true"
        aria-labelledby={id}
        ref={ref}
        data-testid={testId}
      >
        <div className="dialog-head">
          <h2 id={id}>{title}</h2>
          <button type="button" className="icon-btn dialog-x" aria-label="Close" onClick={onClose} disabled={busy}>
            ×
          </button>
        </div>
        <div className="dialog-body">{children}</div>
        {footer && <div className="dialog-foot">{footer}</div>}
      </div>
    </div>
  );
}

/** The body of a confirmation: exactly what will stop or be deleted. */
export function ConfirmationBody({ c }: { c: Confirmation }) {
  return (
    <div className="confirmation" data-testid="confirmation">
      <p>{c.summary}</p>
      {c.items.length > 0 && (
        <ul className="confirm-list">
          {c.items.map((i, n) => (
            <li key={n}>
              {i.label}
              {i.sessions.length > 0 && (
                <ul>
                  {i.sessions.map((s, k) => (
                    <li key={k}>{s}</li>
                  ))}
                </ul>
              )}
            </li>
          ))}
        </ul>
      )}
      <p className={c.danger ? "danger-text" : "muted"}>{c.consequence}</p>
    </div>
  );
}

export function ConfirmDialog({
  c,
  onConfirm,
  onCancel,
  busy,
}: {
  c: Confirmation;
  onConfirm: () => void;
  onCancel: () => void;
  busy?: boolean;
}) {
  return (
    <Dialog
      title={c.title}
      onClose={onCancel}
      busy={busy}
      footer={
        <>
          <button type="button" className="btn" onClick={onCancel} disabled={busy}>
            Cancel
          </button>
          <button type="button" className={`btn ${c.danger ? "danger" : "primary"}`} onClick={onConfirm} disabled={busy}>
            {c.confirmLabel}
          </button>
        </>
      }
    >
      <ConfirmationBody c={c} />
    </Dialog>
  );
}

const stepIcon = { done: "✓", running: "", failed: "✕" } as const;

export function ProgressSteps({ progress }: { progress: Progress }) {
  if (progress.steps.length === 0) return null;
  return (
    <ol className="steps" aria-label="Progress" data-testid="progress">
      {progress.steps.map((s, i) => (
        <li key={i} className={`step ${s.state}`} data-state={s.state}>
          <span className="step-icon" aria-hidden="true">
            {s.state === "running" ? <span className="spinner" /> : stepIcon[s.state]}
          </span>
          <span>{s.text}</span>
        </li>
      ))}
    </ol>
  );
}

/** The keyboard shortcuts for tabs, behind a "?" button. */
export function ShortcutsHelp() {
  return (
    <span className="help" tabIndex={0} aria-label="Keyboard shortcuts" data-testid="shortcuts-help">
      ?
      <span className="help-pop" role="tooltip">
        <strong>Keyboard shortcuts</strong>
        <table>
          <tbody>
            {shortcuts.map((s) => (
              <tr key={s.id}>
                <td>
                  <kbd>{s.keys}</kbd>
                </td>
                <td>{s.does}</td>
              </tr>
            ))}
            <tr>
              <td>
                <kbd>Ctrl+Shift+F</kbd>
              </td>
              <td>Search in the terminal</td>
            </tr>
            <tr>
              <td>
                <kbd>Ctrl+S</kbd>
              </td>
              <td>Save the open file</td>
            </tr>
          </tbody>
        </table>
      </span>
    </span>
  );
}

/**
 * A labelled control. A single input, select or textarea gets the label by id and
 * the hint as its description; anything else is wrapped in the label.
 */
export function Field({ label, hint, children }: { label: string; hint?: ReactNode; children: ReactNode }) {
  const id = useId();
  const hintId = `${id}-hint`;
  if (isValidElement(children) && typeof children.type === "string" && ["input", "select", "textarea"].includes(children.type)) {
    const control = cloneElement(children as ReactElement<Record<string, unknown>>, {
      id,
      "aria-describedby": hint ? hintId : undefined,
    });
    return (
      <div className="field">
        <label className="field-label" htmlFor={id}>
          {label}
        </label>
        {control}
        {hint && (
          <span className="field-hint" id={hintId}>
            {hint}
          </span>
        )}
      </div>
    );
  }
  return (
    <label className="field">
      <span className="field-label">{label}</span>
      {children}
      {hint && <span className="field-hint">{hint}</span>}
    </label>
  );
}

/** Text with `backticked` parts (commands, variables) shown as code; nothing else is interpreted. */
export function InlineCode({ text }: { text: string }) {
  const parts = text.split("`");
  // An odd number of parts means the backticks pair up; otherwise show the text as it is.
  if (parts.length < 3 || parts.length % 2 === 0) return <>{text}</>;
  return (
    <>
      {parts.map((p, i) =>
        i % 2 === 1 ? (
          <code key={i} className="mono">
            {p}
          </code>
        ) : (
          p
        ),
      )}
    </>
  );
}
