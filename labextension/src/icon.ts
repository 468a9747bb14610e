/** nbento's own sidebar icon: a bento box (a tray with three compartments), themed by JupyterLab. */
import { LabIcon } from '@jupyterlab/ui-components';

const SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M4 4h16a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm0 2v12h7V6H4zm9 0v5h7V6h-7zm0 7v5h7v-5h-7z"/>
    <circle cx="7.5" cy="12" r="2"/>
  </g>
</svg>`;

export const nbentoIcon = new LabIcon({ name: 'nbento:bento', svgstr: SVG });
