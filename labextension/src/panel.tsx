/**
 * The nbento side panel: one ReactWidget in the left area that follows the active notebook
 * (INotebookTracker) and shows Cells, Models, Server, Try it, Batching and Export.
 */
import React, { useEffect, useState } from 'react';
import { ReactWidget } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { cellName, cellTooltip } from './cells';
import { CellsSection } from './panelCells';
import { ModelsSection } from './panelModels';
import { BatchingSection, ServerSection, useServer } from './panelServer';
import { TryItSection } from './panelTryIt';
import { ExportSection } from './panelExport';

const REFRESH_MS = 1500; // cell marks change with typing and metadata edits

function Section(props: {
  id: string;
  title: string;
  children: React.ReactNode;
  open?: boolean;
}): JSX.Element {
  const [open, setOpen] = useState(props.open ?? true);
  return (
    <section className={`nbento-section nbento-section-${props.id}`}>
      <h3 className="nbento-section-title" onClick={() => setOpen(!open)}>
        <span className="nbento-caret">{open ? '▾' : '▸'}</span> {props.title}
      </h3>
      {open && <div className="nbento-section-body">{props.children}</div>}
    </section>
  );
}

function NotebookSections(props: { panel: NotebookPanel; tick: number }): JSX.Element {
  const { panel, tick } = props;
  const { server, setServer } = useServer(panel);
  const jumpToCell = (cellId: string): void => {
    const cells = panel.content.model?.cells;
    if (!cells) {
      return;
    }
    for (let i = 0; i < cells.length; i++) {
      if (cells.get(i).id === cellId) {
        panel.content.activeCellIndex = i;
        void panel.content.scrollToItem(i);
        return;
      }
    }
  };
  const nameOfCell = (cellId: string): { name: string; title: string } | null => {
    const cells = panel.content.model?.cells;
    for (let i = 0; cells && i < cells.length; i++) {
      const cell = cells.get(i);
      if (cell.id === cellId) {
        return { name: cellName(cell), title: cellTooltip(cell, i) };
      }
    }
    return null;
  };
  return (
    <>
      <div className="nbento-notebook-name" title={panel.context.path}>
        {panel.context.path}
      </div>
      <Section id="cells" title="Cells">
        <CellsSection panel={panel} tick={tick} />
      </Section>
      <Section id="models" title="Models">
        <ModelsSection tick={Math.floor(tick / 10)} onJumpToCell={jumpToCell} nameOfCell={nameOfCell} />
      </Section>
      <Section id="server" title="Server">
        <ServerSection panel={panel} server={server} setServer={setServer} />
      </Section>
      <Section id="tryit" title="Try it">
        <TryItSection server={server} />
      </Section>
      <Section id="batching" title="Batching">
        <BatchingSection server={server} />
      </Section>
      <Section id="export" title="Export">
        <ExportSection panel={panel} />
      </Section>
    </>
  );
}

function PanelComponent(props: { tracker: INotebookTracker }): JSX.Element {
  const { tracker } = props;
  const [panel, setPanel] = useState<NotebookPanel | null>(tracker.currentWidget);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const onChange = (_: unknown, current: NotebookPanel | null): void => {
      // keep the last notebook when focus moves to a non-notebook widget
      if (current) {
        setPanel(current);
      }
    };
    const onActiveCell = (): void => setTick(t => t + 1);
    tracker.currentChanged.connect(onChange);
    tracker.activeCellChanged.connect(onActiveCell);
    const timer = window.setInterval(() => setTick(t => t + 1), REFRESH_MS);
    return () => {
      tracker.currentChanged.disconnect(onChange);
      tracker.activeCellChanged.disconnect(onActiveCell);
      window.clearInterval(timer);
    };
  }, [tracker]);
  useEffect(() => {
    if (panel) {
      const onDispose = (): void => setPanel(tracker.currentWidget);
      panel.disposed.connect(onDispose);
      return () => {
        panel.disposed.disconnect(onDispose);
      };
    }
  }, [panel]);
  return (
    <div className="nbento-panel-inner">
      <h2 className="nbento-panel-title">nbento</h2>
      {panel ? (
        <NotebookSections key={panel.id} panel={panel} tick={tick} />
      ) : (
        <div className="nbento-muted">Open a notebook to see its captured cells, models and server.</div>
      )}
    </div>
  );
}

export class NbentoPanel extends ReactWidget {
  constructor(private tracker: INotebookTracker) {
    super();
    this.addClass('nbento-panel');
  }

  render(): JSX.Element {
    return <PanelComponent tracker={this.tracker} />;
  }
}
