/**
 * Captured cells carry a mark in the notebook itself: the CSS class `nbento-captured` (and
 * `nbento-captured-KIND`) on the cell, and a small label `model: clf` in its top-right corner.
 * Updated when cells are added or removed, when a cell's source changes (a `%%nbento` line) and
 * when its metadata changes (the panel's tag buttons, a `nbento:` tag).
 */
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { badgeText, cellMark, KINDS } from './cells';

const CAPTURED = 'nbento-captured';
const BADGE = 'nbento-cell-badge';
const DEBOUNCE_MS = 150;

function markCell(cell: Cell): void {
  const mark = cellMark(cell.model);
  const node = cell.node;
  node.classList.toggle(CAPTURED, mark !== null);
  for (const kind of KINDS) {
    node.classList.toggle(`${CAPTURED}-${kind}`, mark?.kind === kind);
  }
  let badge = node.querySelector(`:scope > .${BADGE}`) as HTMLElement | null;
  if (!mark) {
    badge?.remove();
    return;
  }
  if (!badge) {
    badge = document.createElement('div');
    badge.className = BADGE;
    node.appendChild(badge);
  }
  const text = badgeText(mark);
  if (badge.textContent !== text) {
    badge.textContent = text;
  }
  badge.dataset.kind = mark.kind;
  badge.title = `captured by nbento as ${text} (marked by ${mark.via})`;
}

/** Keep the badges of one notebook current until it closes. */
export function trackBadges(panel: NotebookPanel): void {
  let timer: number | undefined;
  const update = (): void => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => {
      if (!panel.isDisposed) {
        panel.content.widgets.forEach(markCell);
      }
    }, DEBOUNCE_MS);
  };
  const watched = new Set<unknown>();
  const watchCells = (): void => {
    const cells = panel.content.model?.cells;
    if (!cells) {
      return;
    }
    for (let i = 0; i < cells.length; i++) {
      const model = cells.get(i);
      if (!watched.has(model)) {
        watched.add(model);
        model.metadataChanged.connect(update);
        model.contentChanged.connect(update);
      }
    }
    update();
  };
  const onModel = (): void => {
    panel.content.model?.cells.changed.connect(watchCells);
    watchCells();
  };
  panel.content.modelChanged.connect(onModel);
  panel.content.modelContentChanged.connect(update);
  void panel.context.ready.then(onModel);
  onModel();
}
