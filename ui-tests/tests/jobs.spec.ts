/**
 * The quantum jobs panel: a `%qsubmit` cell's job is listed with its decision and a
 * verified signature; selecting it shows the histogram; "Verify ledger" checks the ledger.
 */
import { expect, test } from '@jupyterlab/galata';

import { openNewNotebook, step } from './helpers';

test('a %qsubmit job appears in the jobs panel with a verified signature', async ({
  page,
  tmpPath
}, testInfo) => {
  await openNewNotebook(page, `${tmpPath}/ghz.ipynb`);
  await page.notebook.setCell(
    0,
    'code',
    [
      'from jupyter_qsecure.testing.circuits import ghz',
      'qc = ghz(3)',
      'r = %qsubmit qc --shots 256 --seed 7',
      'print("JOB", r.job_id, "VERIFIED", r.verified)'
    ].join('\n')
  );
  await page.notebook.runCell(0);
  const output = page.locator('.jp-OutputArea-output', { hasText: 'JOB ' });
  await expect(output).toContainText('VERIFIED True', { timeout: 120000 });
  const jobId = (/JOB (\S+) VERIFIED/.exec(await output.innerText()) ?? [])[1];
  expect(jobId).toBeTruthy();
  await step(page, testInfo, '1-qsubmit-cell');

  await page.sidebar.openTab('jp-qsecure-jobs');
  const panel = page.locator('#jp-qsecure-jobs');
  await panel.getByRole('button', { name: 'Refresh' }).click();
  const job = panel.locator('.jp-qsecure-job', {
    has: page.locator(`code[title="job id ${jobId}"]`)
  });
  await expect(job).toBeVisible();
  await expect(job.locator('.jp-qsecure-decision')).toHaveText('allowed');
  await expect(job.locator('.jp-qsecure-sig-verified')).toHaveText('verified');
  await expect(job).toContainText('256 shots');

  await job.click();
  await expect(panel.locator('.jp-qsecure-job-detail')).toBeVisible();
  await expect(panel.locator('.jp-qsecure-histogram')).toBeVisible();
  await step(page, testInfo, '2-jobs-panel');

  await panel.getByRole('button', { name: 'Verify ledger' }).click();
  await expect(panel.locator('.jp-qsecure-ok', { hasText: 'Ledger verified' })).toBeVisible();
  await step(page, testInfo, '3-ledger-verified');
});
