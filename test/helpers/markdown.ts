/**
 * The docs as markdown-it reads them (the CommonMark parser GitHub-flavoured
 * renderers agree with): fenced blocks, links, headings and their anchors,
 * and tables. Used by test/docs.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import MarkdownIt from 'markdown-it';
type Token = MarkdownIt.Token;
import GithubSlugger from 'github-slugger';

const md = new MarkdownIt();

export interface Fence {
  lang: string;
  text: string;
  /** 1-based line of the block's first content line. */
  line: number;
}

export interface Link {
  href: string;
  line: number;
}

export interface Heading {
  level: number;
  text: string;
  /** Inline code spans in the heading, when the heading is nothing else. */
  code: string | undefined;
  line: number;
}

export interface Table {
  /** The nearest heading above the table. */
  heading: Heading | undefined;
  header: string[];
  /** Each cell as its inline code spans (the keys a reference row names) and its text. */
  rows: { cells: { code: string[]; text: string }[]; line: number }[];
}

export interface MarkdownPage {
  file: string;
  /** Path relative to the repository root, for messages. */
  name: string;
  fences: Fence[];
  links: Link[];
  headings: Heading[];
  anchors: Set<string>;
  tables: Table[];
  lines: number;
}

function inlineText(token: Token): string {
  return (token.children ?? [])
    .filter((c) => c.type === 'text' || c.type === 'code_inline')
    .map((c) => c.content)
    .join('');
}

function inlineCode(token: Token): string[] {
  return (token.children ?? []).filter((c) => c.type === 'code_inline').map((c) => c.content);
}

function collectLinks(tokens: Token[], out: Link[], line: number): void {
  for (const t of tokens) {
    const at = t.map ? t.map[0] + 1 : line;
    if (t.type === 'link_open' || t.type === 'image') {
      const href = t.attrGet(t.type === 'image' ? 'src' : 'href');
      if (href !== null) out.push({ href: String(href), line: at });
    }
    if (t.children) collectLinks(t.children, out, at);
  }
}

export function readPage(root: string, file: string): MarkdownPage {
  const source = readFileSync(file, 'utf8');
  const tokens = md.parse(source, {});
  const slugger = new GithubSlugger();
  const page: MarkdownPage = {
    file,
    name: relative(root, file),
    fences: [],
    links: [],
    headings: [],
    anchors: new Set(),
    tables: [],
    lines: source.split('\n').length - (source.endsWith('\n') ? 1 : 0),
  };
  collectLinks(tokens, page.links, 1);
  let table: Table | undefined;
  let inHead = false;
  let row: Table['rows'][number] | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const line = t.map ? t.map[0] + 1 : 0;
    if (t.type === 'fence') {
      page.fences.push({ lang: t.info.trim().split(/\s+/)[0] ?? '', text: t.content, line: line + 1 });
    } else if (t.type === 'heading_open') {
      const inline = tokens[i + 1]!;
      const text = inlineText(inline);
      const code = inlineCode(inline);
      const onlyCode = inline.children?.every((c) => c.type === 'code_inline' || (c.type === 'text' && c.content.trim() === ''));
      page.headings.push({ level: Number(t.tag.slice(1)), text, code: onlyCode && code.length === 1 ? code[0] : undefined, line });
      page.anchors.add(slugger.slug(text));
    } else if (t.type === 'table_open') {
      table = { heading: page.headings[page.headings.length - 1], header: [], rows: [] };
    } else if (t.type === 'thead_open') inHead = true;
    else if (t.type === 'thead_close') inHead = false;
    else if (t.type === 'tr_open' && table && !inHead) {
      row = { cells: [], line };
      table.rows.push(row);
    } else if (t.type === 'inline' && table && (tokens[i - 1]?.type === 'th_open' || tokens[i - 1]?.type === 'td_open')) {
      if (inHead) table.header.push(inlineText(t));
      else row?.cells.push({ code: inlineCode(t), text: inlineText(t) });
    } else if (t.type === 'table_close' && table) {
      page.tables.push(table);
      table = undefined;
    }
  }
  return page;
}

/** README.md and every page under docs/. */
export function readDocs(root: string): MarkdownPage[] {
  const files = [join(root, 'README.md')];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.md')) files.push(path);
    }
  };
  walk(join(root, 'docs'));
  return files.map((f) => readPage(root, f));
}
