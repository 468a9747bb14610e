/**
 * Reading and writing the capture marks of notebook cells, in exactly the forms offline
 * capture reads (jupyter_ext/cell_args.py): a `%%nbento KIND [NAME]` first line, the cell
 * metadata `nbento = {"kind": ..., "name": ...}` (what the panel writes), or a cell tag
 * `nbento:KIND [NAME]`.
 */
import { ICellModel, ICodeCellModel } from '@jupyterlab/cells';

export const KINDS = ['preprocess', 'model', 'api'] as const;
export type Kind = (typeof KINDS)[number];

export interface ICellMark {
  kind: Kind;
  name: string | null;
  via: 'magic' | 'metadata' | 'tag';
}

function parseWords(text: string): { kind: Kind; name: string | null } | null {
  const words = text.trim().split(/\s+/);
  const kind = words[0] as Kind;
  if (!KINDS.includes(kind)) {
    return null;
  }
  const name = words[1] && !words[1].startsWith('-') ? words[1] : null;
  return { kind, name };
}

export function cellMark(cell: ICellModel): ICellMark | null {
  if (cell.type !== 'code') {
    return null;
  }
  const first = cell.sharedModel.getSource().replace(/^\s*\n/, '').split('\n')[0].trim();
  if (first === '%%nbento' || first.startsWith('%%nbento ')) {
    const parsed = parseWords(first.slice('%%nbento'.length));
    return parsed ? { ...parsed, via: 'magic' } : null;
  }
  const meta = cell.getMetadata('nbento') as { kind?: string; name?: string } | undefined;
  if (meta && KINDS.includes(meta.kind as Kind)) {
    return { kind: meta.kind as Kind, name: meta.name ?? null, via: 'metadata' };
  }
  const tags = (cell.getMetadata('tags') as string[] | undefined) ?? [];
  for (const tag of tags) {
    if (typeof tag === 'string' && tag.startsWith('nbento:')) {
      const parsed = parseWords(tag.slice('nbento:'.length));
      if (parsed) {
        return { ...parsed, via: 'tag' };
      }
    }
  }
  return null;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MODEL_NAME = /^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$/;

/** A reason the name cannot be used, or null when it is fine. */
export function nameProblem(kind: Kind, name: string): string | null {
  if (kind === 'preprocess') {
    return null;
  }
  if (!name) {
    return `${kindArticle(kind)} cell needs a name`;
  }
  if (kind === 'api' && !IDENTIFIER.test(name)) {
    return `API name '${name}' must be a Python identifier, like classify`;
  }
  if (kind === 'model' && !MODEL_NAME.test(name)) {
    return `model name '${name}' must be lowercase letters, digits, '_', '.' or '-'`;
  }
  return null;
}

/** Write `metadata.nbento`; a `%%nbento` line in the cell wins, so refuse to shadow it. */
export function tagCell(cell: ICellModel, kind: Kind, name: string | null): string | null {
  if (cell.type !== 'code') {
    return 'only code cells can be captured';
  }
  const mark = cellMark(cell);
  if (mark && mark.via === 'magic') {
    return 'this cell starts with a %%nbento line; edit that line instead';
  }
  const problem = nameProblem(kind, name ?? '');
  if (problem) {
    return problem;
  }
  const value: { kind: Kind; name?: string } = { kind };
  if (kind !== 'preprocess' && name) {
    value.name = name;
  }
  cell.setMetadata('nbento', value);
  return null;
}

export function untagCell(cell: ICellModel): string | null {
  const mark = cellMark(cell);
  if (mark && mark.via === 'magic') {
    return 'this cell starts with a %%nbento line; delete that line to untag it';
  }
  cell.deleteMetadata('nbento');
  const tags = (cell.getMetadata('tags') as string[] | undefined) ?? [];
  const kept = tags.filter(t => !(typeof t === 'string' && t.startsWith('nbento:')));
  if (kept.length !== tags.length) {
    cell.setMetadata('tags', kept);
  }
  return null;
}

/** "a model", "an API", "a preprocess": the kind as a sentence names it. */
export function kindArticle(kind: Kind): string {
  return kind === 'api' ? 'an API' : `a ${kind}`;
}

/**
 * The one way the panel names a cell: its execution count as the notebook shows it, then its
 * capture mark: `[6] model clf`, `[ ] api classify` before it ran. The cell id goes in a
 * tooltip (see `cellTooltip`).
 */
export function cellName(cell: ICellModel, mark: ICellMark | null = cellMark(cell)): string {
  const count = cell.type === 'code' ? (cell as ICodeCellModel).executionCount : null;
  const prompt = `[${count ?? ' '}]`;
  return mark ? `${prompt} ${mark.kind}${mark.name ? ' ' + mark.name : ''}` : prompt;
}

export function cellTooltip(cell: ICellModel, index: number, mark: ICellMark | null = cellMark(cell)): string {
  const via = mark ? ` · marked by ${mark.via}` : '';
  return `cell id ${cell.id} · cell ${index + 1} of the notebook${via}`;
}

/** The badge a captured cell carries in the notebook: `model: clf`, `api: classify`, `preprocess`. */
export function badgeText(mark: ICellMark): string {
  return mark.name ? `${mark.kind}: ${mark.name}` : mark.kind;
}
