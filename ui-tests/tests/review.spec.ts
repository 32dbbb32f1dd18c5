/**
 * Review and promotion from the UI: approve a notebook in the review panel, then promote
 * it; the promoted script and its signed provenance appear beside the notebook.
 *
 * Runs on the second server (project "review": no OpenBao, so the server signs approvals
 * with its local reviewer key). Needs the server's review routes (`GET status` lists the
 * "review" feature): until branch i16-reviewapi is merged they are missing and the test
 * is skipped, saying so. Set QSECURE_UI_REQUIRE_REVIEW=1 to fail instead of skipping.
 */
import { expect, test } from '@jupyterlab/galata';

import { openNewNotebook, step } from './helpers';

test('approve and promote a notebook from the review panel', async ({
  page,
  tmpPath
}, testInfo) => {
  const status = await page.request.get('/qsecure/api/status');
  expect(status.ok()).toBe(true);
  const features: string[] = (await status.json()).features ?? [];
  test.skip(
    !features.includes('review') && process.env.QSECURE_UI_REQUIRE_REVIEW !== '1',
    'the server has no review/promotion routes (they come with branch i16-reviewapi): ' +
      'lift this skip once it is merged'
  );

  const path = `${tmpPath}/bell.ipynb`;
  await openNewNotebook(page, path, 'import math\n\nprint(math.sqrt(2))');
  await page.sidebar.openTab('jp-qsecure-review');
  const panel = page.locator('#jp-qsecure-review');
  const state = panel.locator('.jp-qsecure-review-state');
  await expect(state).toBeVisible();
  await expect(panel.locator('.jp-qsecure-review-approved')).toHaveCount(0);
  await step(page, testInfo, '1-unapproved');

  await panel.getByRole('button', { name: 'Approve' }).click();
  await expect(panel.locator('.jp-qsecure-review-approved')).toBeVisible({ timeout: 60000 });
  await step(page, testInfo, '2-approved');

  await panel.getByRole('button', { name: 'Promote' }).click();
  const done = panel.locator('.jp-qsecure-ok', { hasText: 'Signed provenance' });
  await expect(done).toBeVisible({ timeout: 120000 });
  await step(page, testInfo, '3-promoted');

  const listing = await page.request.get(`/api/contents/${tmpPath}/promoted/bell?content=1`);
  expect(listing.ok()).toBe(true);
  const names = ((await listing.json()).content as { name: string }[]).map(f => f.name);
  expect(names).toEqual(
    expect.arrayContaining(['bell.py', 'promotion.intoto.json', 'requirements.lock'])
  );
});
