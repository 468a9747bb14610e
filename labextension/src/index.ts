/**
 * Plugin wiring: the left-area nbento panel (its own bento icon), the badges on captured cells
 * in open notebooks, and the command-palette entry that opens the panel.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { trackBadges } from './badges';
import { nbentoIcon } from './icon';
import { NbentoPanel } from './panel';

export const PANEL_ID = 'nbento-panel';
export const CMD_OPEN = 'nbento:open-panel';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbento:panel',
  description: 'nbento side panel: captured cells, models, dev server, Try it, batching, export.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new NbentoPanel(tracker);
    panel.id = PANEL_ID;
    panel.title.icon = nbentoIcon;
    panel.title.caption = 'nbento: serve this notebook';
    app.shell.add(panel, 'left', { rank: 850 });
    // captured cells carry a badge in every open notebook, panel shown or not
    tracker.forEach(trackBadges);
    tracker.widgetAdded.connect((_, notebook) => trackBadges(notebook));
    if (restorer) {
      restorer.add(panel, PANEL_ID);
    }
    app.commands.addCommand(CMD_OPEN, {
      label: 'nbento: Open Panel',
      caption: 'Show the nbento side panel for the active notebook',
      execute: () => {
        app.shell.activateById(PANEL_ID);
      }
    });
    if (palette) {
      palette.addItem({ command: CMD_OPEN, category: 'nbento' });
    }
  }
};

export default plugin;
