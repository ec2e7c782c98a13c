/**
 * A problem in a route table, located as `FILE:LINE:COL message`. Kept apart
 * from the loader so the gateway's main thread can report problems without
 * loading the parser and the schema library (they run on the reload worker).
 */
export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  message: string;
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.col} ${p.message}`;
}
