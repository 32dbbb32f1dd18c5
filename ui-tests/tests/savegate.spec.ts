/**
 * The save gate in the browser: a notebook holding a fake key is refused with our dialog
 * (never the value); "Clear outputs" and "Store as secret & replace" make it clean and
 * the next save goes through. Autosave refusals show one notification, not one each.
 */
import { expect, galata, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import type { Response } from '@playwright/test';

import { fakeAwsKeyId, openNewNotebook, step } from './helpers';

/** Run a JupyterLab command as a key binding would (our hook tells manual saves apart). */
async function command(page: IJupyterLabPageFixture, id: string): Promise<void> {
  await page.evaluate(async id => {
    await (window as any).jupyterapp.commands.execute(id);
  }, id);
}

/** Saves of `path` the server refused (HTTP 422 on the contents API), as they happen. */
function refusedSaves(page: IJupyterLabPageFixture, path: string): Response[] {
  const refused: Response[] = [];
  page.on('response', response => {
    const request = response.request();
    if (
      request.method() === 'PUT' &&
      response.status() === 422 &&
      decodeURIComponent(new URL(response.url()).pathname).endsWith(`/api/contents/${path}`)
    ) {
      refused.push(response);
    }
  });
  return refused;
}

async function fileText(page: IJupyterLabPageFixture, path: string): Promise<string> {
  const response = await page.request.get(`/api/contents/${path}?content=1&type=notebook`);
  expect(response.ok()).toBe(true);
  return response.text();
}

test('a refused save: our dialog, clear outputs, replace, then saved', async ({
  page,
  tmpPath
}, testInfo) => {
  const key = fakeAwsKeyId();
  const path = `${tmpPath}/gate.ipynb`;
  const refused = refusedSaves(page, path);
  const cells = [page.locator('.jp-Cell-inputArea'), page.locator('.jp-Cell-outputArea')];

  await openNewNotebook(page, path);
  await page.sidebar.close('left'); // room for the toolbar's save-gate indicator
  await page.notebook.setCell(0, 'code', `key = "${key}"\nprint(len(key), key)`);
  await page.notebook.runCell(0);
  await expect(page.locator('.jp-OutputArea-output')).toHaveCount(1);

  await command(page, 'docmanager:save');
  const dialog = page.locator('.jp-qsecure-RefusalDialog');
  await expect(dialog).toBeVisible();
  await expect(dialog).toContainText('Not saved: gate.ipynb holds a secret');
  const rows = dialog.locator('.jp-qsecure-Findings-table tbody tr');
  await expect(rows.filter({ hasText: 'output' })).not.toHaveCount(0);
  await expect(rows.filter({ hasText: 'source' })).not.toHaveCount(0);
  await expect(rows.first()).toContainText('Cell 1'); // as JupyterLab numbers it
  expect(await dialog.innerText()).not.toContain(key.slice(4));
  await expect(page.locator('.jp-qsecure-gate-refused')).toBeVisible();
  await step(page, testInfo, '1-refusal-dialog', cells);

  // Clear the outputs that hold it.
  await rows
    .filter({ hasText: 'output' })
    .first()
    .getByRole('button', { name: 'Clear outputs' })
    .click();
  await expect(dialog).toHaveCount(0);
  await expect(page.locator('.jp-OutputArea-output')).toHaveCount(0);
  await step(page, testInfo, '2-outputs-cleared', cells);

  // Save again: only the source is left; store the literal as a secret and replace it.
  await command(page, 'docmanager:save');
  await expect(dialog).toBeVisible();
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText('source');
  await rows.first().getByRole('button', { name: 'Store as secret & replace' }).click();
  const store = page.locator('.jp-Dialog', { hasText: 'Store as a secret' });
  await expect(store).toBeVisible();
  expect(await store.innerText()).not.toContain(key.slice(4));
  const name = `aws_key_${Date.now().toString(36)}`;
  await store.getByLabel('Secret name').fill(name);
  await step(page, testInfo, '3-store-and-replace', cells);
  await store.getByRole('button', { name: 'Store and replace' }).click();
  await expect(store).toHaveCount(0);
  const source = await page.notebook.getCellTextInput(0);
  expect(source).toContain(`secrets.get("${name}")`);
  expect(source).not.toContain(key.slice(4));

  // Now the save goes through.
  await command(page, 'docmanager:save');
  await expect(page.locator('.jp-qsecure-gate-refused')).toHaveCount(0);
  await expect.poll(async () => (await fileText(page, path)).includes(name)).toBe(true);
  const saved = await fileText(page, path);
  expect(saved).not.toContain(key.slice(4));
  expect(refused).toHaveLength(2);
  await expect(page.locator('.jp-qsecure-RefusalDialog')).toHaveCount(0);
  await step(page, testInfo, '4-saved');
});

test.describe('autosave', () => {
  test.use({
    mockSettings: {
      ...galata.DEFAULT_SETTINGS,
      '@jupyterlab/docmanager-extension:plugin': {
        ...galata.DEFAULT_SETTINGS['@jupyterlab/docmanager-extension:plugin'],
        autosave: true,
        autosaveInterval: 2
      }
    }
  });

  test('a refused notebook left through two autosave intervals: one notification', async ({
    page,
    tmpPath
  }, testInfo) => {
    const path = `${tmpPath}/autosave.ipynb`;
    const refused = refusedSaves(page, path);
    await openNewNotebook(page, path);
    await page.sidebar.close('left');
    // Count the autosaves that end (JupyterLab's context reports each as "failed").
    await page.evaluate(() => {
      const w = window as any;
      w.qsecureFailedSaves = 0;
      w.jupyterapp.shell.currentWidget.context.saveState.connect((_: unknown, state: string) => {
        if (state === 'failed') {
          w.qsecureFailedSaves += 1;
        }
      });
    });
    // In one change (typing races autosave: a save that returns after a keystroke marks
    // the notebook clean, and it is not autosaved again).
    await page.evaluate(source => {
      const panel = (window as any).jupyterapp.shell.currentWidget;
      panel.content.model.cells.get(0).sharedModel.setSource(source);
    }, `key = "${fakeAwsKeyId()}"`);

    const toasts = page.locator('.Toastify__toast', { hasText: 'autosave.ipynb was not saved' });
    await expect(toasts).toHaveCount(1);
    await page.waitForFunction(() => (window as any).qsecureFailedSaves >= 1);
    const first = await page.evaluate(() => (window as any).qsecureFailedSaves as number);
    // Two more autosave intervals of the same refused notebook.
    await page.waitForFunction(n => (window as any).qsecureFailedSaves >= n + 2, first, {
      timeout: 60000
    });
    await expect(toasts).toHaveCount(1);
    await expect(page.locator('.jp-Dialog')).toHaveCount(0); // no "File Save Error"
    await expect(page.locator('.jp-qsecure-gate-refused')).toBeVisible();
    expect(refused).toHaveLength(1); // unchanged content is not sent again
    await step(page, testInfo, '1-one-notification', [page.locator('.jp-Cell-inputArea')]);
  });
});
