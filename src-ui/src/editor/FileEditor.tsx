// A file of the workspace in CodeMirror 6: read with read_text_file, saved with
// write_text_file (Ctrl+S or the Save button).
import { useEffect, useRef, useState } from "react";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import {
  bracketMatching,
  defaultHighlightStyle,
  foldGutter,
  foldKeymap,
  HighlightStyle,
  indentOnInput,
  syntaxHighlighting,
} from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { Compartment, EditorState, type Extension } from "@codemirror/state";
import {
  drawSelection,
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  keymap,
  lineNumbers,
} from "@codemirror/view";
import { tags as t } from "@lezer/highlight";

import { api, toSamError, type SamError } from "../api";
import { ErrorBox, Spinner } from "../components/ui";
import { languageOf, loadLanguage } from "./languages";

const darkHighlight = HighlightStyle.define([
  { tag: t.keyword, color: "#c678dd" },
  { tag: [t.name, t.deleted, t.character, t.macroName], color: "#d6d9e0" },
  { tag: [t.function(t.variableName), t.labelName], color: "#61afef" },
  { tag: [t.color, t.constant(t.name), t.standard(t.name)], color: "#d19a66" },
  { tag: [t.definition(t.name), t.separator], color: "#e5c07b" },
  { tag: [t.typeName, t.className, t.number, t.changed, t.annotation, t.modifier, t.self, t.namespace], color: "#e5c07b" },
  { tag: [t.operator, t.operatorKeyword, t.url, t.escape, t.regexp, t.link, t.special(t.string)], color: "#56b6c2" },
  { tag: [t.meta, t.comment], color: "#7f848e", fontStyle: "italic" },
  { tag: t.strong, fontWeight: "bold" },
  { tag: t.emphasis, fontStyle: "italic" },
  { tag: t.heading, fontWeight: "bold", color: "#e06c75" },
  { tag: [t.atom, t.bool, t.special(t.variableName)], color: "#d19a66" },
  { tag: [t.processingInstruction, t.string, t.inserted], color: "#98c379" },
  { tag: t.invalid, color: "#ff6b6b" },
]);

function themeOf(dark: boolean): Extension {
  return [
    EditorView.theme(
      {
        "&": { height: "100%", backgroundColor: "var(--bg-editor)", color: "var(--fg)" },
        ".cm-content": { caretColor: "var(--fg)" },
        ".cm-gutters": { backgroundColor: "var(--bg-editor)", color: "var(--fg-muted)", border: "none" },
        ".cm-activeLine": { backgroundColor: "var(--bg-active-line)" },
        ".cm-activeLineGutter": { backgroundColor: "var(--bg-active-line)" },
        "&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection": {
          backgroundColor: "var(--bg-selection) !important",
        },
        ".cm-scroller": { fontFamily: "var(--font-mono)", fontSize: "13px" },
      },
      { dark },
    ),
    syntaxHighlighting(dark ? darkHighlight : defaultHighlightStyle, { fallback: true }),
  ];
}

export function FileEditor({
  workspace,
  path,
  active,
  dark,
  onDirty,
}: {
  workspace: string;
  path: string;
  active: boolean;
  dark: boolean;
  onDirty?: (dirty: boolean) => void;
}) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const saved = useRef("");
  const themeComp = useRef(new Compartment());
  const langComp = useRef(new Compartment());
  const onDirtyRef = useRef(onDirty);
  onDirtyRef.current = onDirty;
  const darkRef = useRef(dark);
  darkRef.current = dark;
  const [phase, setPhase] = useState<"loading" | "ready" | "error">("loading");
  const [error, setError] = useState<SamError | null>(null);
  const [dirty, setDirty] = useState(false);
  const [saving, setSaving] = useState(false);
  const [saveError, setSaveError] = useState<SamError | null>(null);
  const [savedAt, setSavedAt] = useState<number | null>(null);
  const [attempt, setAttempt] = useState(0);

  const markDirty = (d: boolean) => {
    setDirty(d);
    onDirtyRef.current?.(d);
  };

  const save = async () => {
    const v = view.current;
    if (!v) return;
    const content = v.state.doc.toString();
    setSaving(true);
    setSaveError(null);
    try {
      await api.writeTextFile(workspace, path, content);
      saved.current = content;
      markDirty(v.state.doc.toString() !== content);
      setSavedAt(Date.now());
    } catch (e) {
      setSaveError(toSamError(e));
    } finally {
      setSaving(false);
    }
  };
  const saveRef = useRef(save);
  saveRef.current = save;

  useEffect(() => {
    let disposed = false;
    setPhase("loading");
    setError(null);
    api
      .readTextFile(workspace, path)
      .then((text) => {
        if (disposed || !host.current) return;
        saved.current = text;
        const state = EditorState.create({
          doc: text,
          extensions: [
            lineNumbers(),
            highlightActiveLineGutter(),
            highlightSpecialChars(),
            history(),
            foldGutter(),
            drawSelection(),
            indentOnInput(),
            bracketMatching(),
            highlightActiveLine(),
            highlightSelectionMatches(),
            keymap.of([
              {
                key: "Mod-s",
                preventDefault: true,
                run: () => {
                  void saveRef.current();
                  return true;
                },
              },
              indentWithTab,
              ...defaultKeymap,
              ...historyKeymap,
              ...searchKeymap,
              ...foldKeymap,
            ]),
            themeComp.current.of(themeOf(darkRef.current)),
            langComp.current.of([]),
            EditorView.updateListener.of((u) => {
              if (u.docChanged) markDirty(u.state.doc.toString() !== saved.current);
            }),
          ],
        });
        view.current = new EditorView({ state, parent: host.current });
        setPhase("ready");
        void loadLanguage(languageOf(path)).then((ext) => {
          if (!disposed && ext && view.current) view.current.dispatch({ effects: langComp.current.reconfigure(ext) });
        });
      })
      .catch((e) => {
        if (disposed) return;
        setPhase("error");
        setError(toSamError(e));
      });
    return () => {
      disposed = true;
      view.current?.destroy();
      view.current = null;
    };
    // markDirty reads refs only.
  }, [workspace, path, attempt]);

  useEffect(() => {
    view.current?.dispatch({ effects: themeComp.current.reconfigure(themeOf(dark)) });
  }, [dark]);

  useEffect(() => {
    if (active && phase === "ready") view.current?.focus();
  }, [active, phase]);

  return (
    <div className="editor-pane" data-path={path} data-dirty={dirty ? "true" : "false"}>
      <div className="editor-bar">
        <span className="mono small ellipsis">{path}</span>
        <span className="muted small" data-testid="save-state">
          {saving ? "Saving…" : dirty ? "Unsaved changes" : savedAt ? "Saved" : ""}
        </span>
        <button type="button" className="btn small primary" onClick={() => void save()} disabled={phase !== "ready" || saving || !dirty} title="Save (Ctrl+S)">
          Save
        </button>
      </div>
      {saveError && <ErrorBox error={saveError} compact />}
      {phase === "loading" && (
        <div className="pad">
          <Spinner label={`Opening ${path}…`} />
        </div>
      )}
      {phase === "error" && error && (
        <div className="pad">
          <ErrorBox error={error} onRetry={() => setAttempt((a) => a + 1)} />
        </div>
      )}
      <div className="editor-host" ref={host} />
    </div>
  );
}
