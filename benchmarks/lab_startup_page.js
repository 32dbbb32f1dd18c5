/**
 * One browser measurement for benchmarks/lab_startup_bench.py (run by it, not by hand):
 * in a fresh Chromium context (new profile), the time from navigation to an idle
 * launcher, then the time to open NOTEBOOK until it is shown with its cells rendered.
 *
 *   node benchmarks/lab_startup_page.js BASE_URL NOTEBOOK_PATH
 *
 * Prints one JSON line: {"startup_ms", "extension" (our plugins active), "open_ms", "cells"}. Uses the
 * UI tests' Playwright (ui-tests/node_modules) and Debian's Chromium (CHROMIUM).
 */
const path = require('path');
const { chromium } = require(
  path.join(__dirname, '..', 'ui-tests', 'node_modules', '@playwright', 'test')
);

const [baseURL, notebook] = process.argv.slice(2);
if (!baseURL || !notebook) {
  console.error('usage: node lab_startup_page.js BASE_URL NOTEBOOK_PATH');
  process.exit(2);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--headless',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run'
    ]
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();

    // Start-up: navigation until the launcher is shown and the application has
    // restored its layout (every plugin activated), and the page is idle.
    const t0 = Date.now();
    await page.goto(`${baseURL}/lab`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('.jp-Launcher-body', { state: 'visible', timeout: 120000 });
    await page.evaluate(async () => {
      await window.jupyterapp.restored;
      await new Promise(resolve => requestAnimationFrame(() => resolve()));
    });
    const startup = Date.now() - t0;
    // Which side this is: our plugins activated, or not there at all.
    const extension = await page.evaluate(() =>
      window.jupyterapp.isPluginActivated('jupyter-qsecure:save-gate')
    );

    // Notebook open: the command until the notebook is revealed with its first cells
    // drawn (JupyterLab renders the rest as they scroll into view).
    const result = await page.evaluate(async notebook => {
      const app = window.jupyterapp;
      const t = performance.now();
      const panel = await app.commands.execute('docmanager:open', {
        path: notebook,
        factory: 'Notebook'
      });
      await panel.context.ready;
      await panel.revealed;
      while (!panel.node.querySelector('.jp-Cell .jp-InputArea-editor .cm-content')) {
        await new Promise(resolve => requestAnimationFrame(() => resolve()));
      }
      await new Promise(resolve => requestAnimationFrame(() => resolve()));
      return { open_ms: performance.now() - t, cells: panel.content.model.cells.length };
    }, notebook);
    console.log(JSON.stringify({ startup_ms: startup, extension, ...result }));
  } finally {
    await browser.close();
  }
}

main().catch(err => {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
