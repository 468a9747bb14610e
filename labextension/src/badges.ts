/**
 * Captured cells carry a mark in the notebook itself: the CSS class `nbento-captured` (and
 * `nbento-captured-KIND`) on the cell, and a small label `model: clf` at the bottom right of its input.
 * Updated when cells are added or removed, when a cell's source changes (a `%%nbento` line) and
 * when its metadata changes (the panel's tag buttons, a `nbento:` tag).
 */
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { badgeText, cellMark, KINDS } from './cells';

const CAPTURED = 'nbento-captured';
const BADGE = 'nbento-cell-badge';
const DEBOUNCE_MS = 150;
const SWEEP_MS = 2000;

function markCell(cell: Cell): void {
  const mark = cellMark(cell.model);
  const node = cell.node;
  node.classList.toggle(CAPTURED, mark !== null);
  for (const kind of KINDS) {
    node.classList.toggle(`${CAPTURED}-${kind}`, mark?.kind === kind);
  }
  // bottom right of the input: the top right is the active cell's toolbar
  // (a cell not rendered yet has no input area: its badge moves there once it has one)
  const host = cell.inputArea?.node ?? node;
  let badge: HTMLElement | null = null;
  node.querySelectorAll(`.${BADGE}`).forEach(found => {
    if (found.parentElement === host && mark && !badge) {
      badge = found as HTMLElement;
    } else {
      found.remove();
    }
  });
  if (!mark) {
    return;
  }
  if (!badge) {
    badge = document.createElement('div');
    badge.className = BADGE;
    host.appendChild(badge);
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
  // cells rendered later (a long notebook renders what is in view) get theirs on the next tick
  const sweep = window.setInterval(update, SWEEP_MS);
  panel.disposed.connect(() => window.clearInterval(sweep));
  panel.content.modelChanged.connect(onModel);
  panel.content.modelContentChanged.connect(update);
  void panel.context.ready.then(onModel);
  onModel();
}
