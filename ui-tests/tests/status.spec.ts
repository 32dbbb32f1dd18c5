/**
 * The status bar when a notebook opens: the open itself asks the qsecure server nothing
 * (issue 16's open-time target: the notebook becomes current before its kernel starts,
 * so there is nothing new to show), and once the kernel is up the status bar asks
 * about that kernel.
 */
import { expect, galata, test } from '@jupyterlab/galata';

import { qsecureNotebook } from './helpers';

test.use({
  mockSettings: {
    ...galata.DEFAULT_SETTINGS,
    // No periodic status request while the test runs: only those the open causes.
    'jupyter-qsecure:plugin': { statusRefreshSeconds: 3600 }
  }
});

test('opening a notebook asks the status only about its started kernel', async ({
  page,
  tmpPath
}) => {
  const path = `${tmpPath}/open.ipynb`;
  expect(await page.contents.uploadContent(qsecureNotebook('1 + 1'), 'text', path)).toBe(true);
  // The first answer (asked once JupyterLab has restored its layout) is shown.
  await expect(page.locator('.jp-qsecure-env')).toHaveText('dev');

  const asked: string[] = [];
  page.on('request', request => {
    const url = new URL(request.url());
    if (url.pathname.includes('/qsecure/api/')) {
      // Without JupyterLab's cache-busting parameter (a bare number).
      const params = [...url.searchParams].filter(([key, value]) => value || !/^\d+$/.test(key));
      const search = params.map(([key, value]) => `${key}=${value}`).join('&');
      asked.push(url.pathname.replace(/^.*\/qsecure\/api\//, '') + (search ? `?${search}` : ''));
    }
  });
  const kernelId: string = await page.evaluate(async path => {
    const app = (window as any).jupyterapp;
    const panel = await app.commands.execute('docmanager:open', { path, factory: 'Notebook' });
    await panel.context.ready;
    await panel.revealed;
    await panel.sessionContext.ready;
    return panel.sessionContext.session.kernel.id;
  }, path);

  await expect.poll(() => asked.length).toBeGreaterThan(0);
  await expect(page.locator('.jp-qsecure-creds')).toBeVisible(); // the kernel's credential state
  expect(asked.filter(request => request !== `status?kernel=${kernelId}`)).toEqual([]);
});
