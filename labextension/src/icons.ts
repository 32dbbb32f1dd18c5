import { LabIcon } from '@jupyterlab/ui-components';

/* Monochrome SVGs that follow the theme (`jp-icon3` fill). */

const shield = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<path class="jp-icon3" fill="#616161" d="M12 1 3 5v6c0 5.55 3.84 10.74 9 12 5.16-1.26 9-6.45 9-12V5l-9-4zm0 2.18 7 3.11V11c0 4.52-2.98 8.69-7 9.93-4.02-1.24-7-5.41-7-9.93V6.29l7-3.11z"/>
</svg>`;

const key = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<path class="jp-icon3" fill="#616161" d="M7 14a2 2 0 1 1 0-4 2 2 0 0 1 0 4zm5.65-4A6 6 0 1 0 12.65 14H16v4h4v-4h2v-4h-9.35z"/>
</svg>`;

const atom = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<g class="jp-icon3" fill="none" stroke="#616161" stroke-width="1.6">
<ellipse cx="12" cy="12" rx="10" ry="4"/>
<ellipse cx="12" cy="12" rx="10" ry="4" transform="rotate(60 12 12)"/>
<ellipse cx="12" cy="12" rx="10" ry="4" transform="rotate(120 12 12)"/>
</g><circle class="jp-icon3" fill="#616161" cx="12" cy="12" r="1.8"/>
</svg>`;

const review = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<path class="jp-icon3" fill="#616161" d="M9 16.17 4.83 12l-1.42 1.41L9 19 21 7l-1.41-1.41z"/>
</svg>`;

export const shieldIcon = new LabIcon({ name: 'jupyter-qsecure:shield', svgstr: shield });
export const keyIcon = new LabIcon({ name: 'jupyter-qsecure:key', svgstr: key });
export const atomIcon = new LabIcon({ name: 'jupyter-qsecure:atom', svgstr: atom });
export const reviewIcon = new LabIcon({ name: 'jupyter-qsecure:review', svgstr: review });
