/** Plugin wiring: the left-area nbento panel and the command-palette entry that opens it. */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { buildIcon } from '@jupyterlab/ui-components';
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
    panel.title.icon = buildIcon;
    panel.title.caption = 'nbento: serve this notebook';
    app.shell.add(panel, 'left', { rank: 850 });
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
