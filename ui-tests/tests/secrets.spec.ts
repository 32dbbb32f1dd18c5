/**
 * The secrets panel: a value stored through the panel (OpenBao, via the server) is read
 * in a notebook cell, and the browser only ever shows its placeholder.
 */
import { expect, test } from '@jupyterlab/galata';

import { fakeValue, pageShows, step } from './helpers';

test('store a secret in the panel and read it in a cell', async ({ page }, testInfo) => {
  const name = `ui_token_${Date.now().toString(36)}`;
  const value = fakeValue();

  await page.notebook.createNew('secret.ipynb', { kernel: 'qsecure' });
  await page.sidebar.openTab('jp-qsecure-secrets');
  const panel = page.locator('#jp-qsecure-secrets');
  await expect(panel.getByText('Add a secret')).toBeVisible();

  await panel.getByLabel('Secret name').fill(name);
  await panel.getByLabel('Secret value').fill(value);
  await step(page, testInfo, '1-panel-filled');
  await panel.getByRole('button', { name: 'Store' }).click();
  await expect(panel.locator('.jp-qsecure-secret-name', { hasText: name })).toBeVisible();
  await expect(panel.getByLabel('Secret value')).toHaveValue('');
  await step(page, testInfo, '2-stored');

  await page.notebook.setCell(
    0,
    'code',
    `from jupyter_qsecure import secrets\ntoken = secrets.get("${name}")\nprint("token:", token)`
  );
  await page.notebook.runCell(0);
  const output = page.locator('.jp-OutputArea-output').first();
  await expect(output).toContainText(`«secret:${name}»`);
  await step(page, testInfo, '3-placeholder-in-output');

  expect(await pageShows(page, value)).toBe(false);
});
