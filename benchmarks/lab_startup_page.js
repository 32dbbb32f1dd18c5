/**
 * One browser measurement for benchmarks/lab_startup_bench.py (run by it, not by hand):
 * in a fresh Chromium context (new profile), the time from navigation to an idle
 * launcher, then the time to open NOTEBOOK until it is shown with its cells rendered.
 * With OPEN_ROUNDS > 1 the notebook is then closed (its kernel shut down first, so each
 * open starts from the same state: no session for the file) and opened again, each
 * time on an idle page; those repeats are in "reopen_ms" (the first open, with the
 * notebook's code chunks still to load, stays "open_ms").
 *
 *   node benchmarks/lab_startup_page.js BASE_URL NOTEBOOK_PATH [OPEN_ROUNDS]
 *
 * Prints one JSON line: {"startup_ms", "extension" (our plugins active), "open_ms",
 * "reopen_ms", "cells", "kernels" (kernel names the opens started)}. Uses the UI
 * tests' Playwright (ui-tests/node_modules) and Debian's Chromium (CHROMIUM).
 */
const path = require('path');
const { chromium } = require(
  path.join(__dirname, '..', 'ui-tests', 'node_modules', '@playwright', 'test')
);

const chromiumArgs = require(path.join(__dirname, '..', 'ui-tests', 'chromium-args'));

const [baseURL, notebook, roundsArg] = process.argv.slice(2);
const openRounds = Number(roundsArg ?? 1);
if (!baseURL || !notebook || !Number.isInteger(openRounds) || openRounds < 1) {
  console.error('usage: node lab_startup_page.js BASE_URL NOTEBOOK_PATH [OPEN_ROUNDS]');
  process.exit(2);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: chromiumArgs
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
    // drawn (JupyterLab renders the rest as they scroll into view). The kernel is
    // started after that (JupyterLab does not wait for it to show the notebook).
    const openOnce = () =>
      page.evaluate(async notebook => {
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
    // Between opens: wait for the kernel the open started, shut it down, close the
    // notebook and let the page go idle, so that every open starts alike.
    const closeNotebook = () =>
      page.evaluate(async notebook => {
        const widget = window.jupyterapp.shell.currentWidget;
        const panel = widget?.context?.path === notebook ? widget : null;
        if (!panel) {
          throw new Error(`${notebook} is not the current widget`);
        }
        await panel.sessionContext.ready;
        const kernel = panel.sessionContext.session?.kernel?.name ?? null;
        await panel.sessionContext.shutdown();
        panel.dispose();
        await new Promise(resolve => requestIdleCallback(() => resolve(), { timeout: 5000 }));
        return kernel;
      }, notebook);

    const first = await openOnce();
    const kernels = [];
    const reopen = [];
    for (let i = 1; i < openRounds; i++) {
      kernels.push(await closeNotebook());
      reopen.push((await openOnce()).open_ms);
    }
    const result = { open_ms: first.open_ms, reopen_ms: reopen, cells: first.cells, kernels };
    console.log(JSON.stringify({ startup_ms: startup, extension, ...result }));
  } finally {
    await browser.close();
  }
}

main().catch(err => {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
