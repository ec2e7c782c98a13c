import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { yaml } from '@codemirror/lang-yaml';
import { bracketMatching, defaultHighlightStyle, HighlightStyle, indentOnInput, syntaxHighlighting } from '@codemirror/language';
import { lintGutter, setDiagnostics, type Diagnostic } from '@codemirror/lint';
import { EditorState, type Extension } from '@codemirror/state';
import { EditorView, highlightActiveLine, keymap, lineNumbers } from '@codemirror/view';
import { tags } from '@lezer/highlight';

/** Dark-mode token colours (the default style is made for light backgrounds). */
const darkHighlight = HighlightStyle.define([
  { tag: tags.propertyName, color: '#7cc4ff' },
  { tag: [tags.string, tags.special(tags.string)], color: '#b5e48c' },
  { tag: [tags.number, tags.bool, tags.null], color: '#ffb86c' },
  { tag: tags.comment, color: '#8b949e', fontStyle: 'italic' },
  { tag: [tags.meta, tags.keyword], color: '#d2a8ff' },
]);

export interface Problem {
  line: number;
  col: number;
  message: string;
}

/**
 * The route-table editor: CodeMirror 6 with YAML highlighting, line numbers,
 * and the gateway's validation problems shown at their line and column. Its
 * injected styles carry the page's CSP nonce.
 */
export class TableEditor {
  readonly view: EditorView;

  constructor(parent: HTMLElement, text: string, readOnly: boolean, onChange: () => void) {
    const nonce = document.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content ?? '';
    const dark = matchMedia('(prefers-color-scheme: dark)').matches;
    const extensions: Extension[] = [
      EditorView.cspNonce.of(nonce),
      lineNumbers(),
      history(),
      indentOnInput(),
      bracketMatching(),
      highlightActiveLine(),
      syntaxHighlighting(dark ? darkHighlight : defaultHighlightStyle, { fallback: true }),
      yaml(),
      lintGutter(),
      keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
      EditorState.readOnly.of(readOnly),
      EditorView.contentAttributes.of({ 'aria-label': 'Route table (YAML)' }),
      EditorView.updateListener.of((u) => {
        if (u.docChanged) onChange();
      }),
      EditorView.theme({ '&': { height: '60vh' }, '.cm-scroller': { overflow: 'auto' } }, { dark }),
    ];
    this.view = new EditorView({ parent, state: EditorState.create({ doc: text, extensions }) });
  }

  get text(): string {
    return this.view.state.doc.toString();
  }

  set text(value: string) {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: value } });
  }

  /** Marks problems at their line and column (1-based, as the gateway reports them). */
  showProblems(problems: Problem[]): void {
    const doc = this.view.state.doc;
    const diagnostics: Diagnostic[] = problems.map((p) => {
      const line = doc.line(Math.min(Math.max(1, p.line), doc.lines));
      const from = Math.min(line.from + Math.max(0, p.col - 1), line.to);
      return { from, to: Math.max(from, line.to), severity: 'error', message: p.message };
    });
    this.view.dispatch(setDiagnostics(this.view.state, diagnostics));
    if (diagnostics.length > 0) this.view.dispatch({ selection: { anchor: diagnostics[0]!.from }, scrollIntoView: true });
  }

  destroy(): void {
    this.view.destroy();
  }
}
