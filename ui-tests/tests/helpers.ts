/**
 * Shared helpers of the UI tests: fake secrets generated at run time, screenshots kept
 * as test artifacts, and checks that a value never reaches the page.
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

import type { IJupyterLabPageFixture } from '@jupyterlab/galata';
import type { Locator, Page, TestInfo } from '@playwright/test';

/** Where step screenshots go (kept as artifacts; README images are copied from here). */
export const SCREENSHOTS = path.resolve(__dirname, '..', 'screenshots');

/** A fake value, new on every run; never printed. */
export function fakeValue(prefix = 'qsfake'): string {
  return `${prefix}-${randomBytes(24).toString('base64url')}`;
}

/** A secret-shaped fake key the save gate's scanner knows (an AWS access key id shape). */
export function fakeAwsKeyId(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bytes = randomBytes(16);
  return 'AKIA' + Array.from(bytes, b => alphabet[b % alphabet.length]).join('');
}

/**
 * A screenshot of the page, attached to the test and kept under `screenshots/`. `mask`:
 * parts painted over (cells that show a fake key: artifacts hold no secret-shaped text).
 */
export async function step(
  page: Page,
  testInfo: TestInfo,
  name: string,
  mask: Locator[] = []
): Promise<void> {
  const file = path.join(SCREENSHOTS, `${slug(testInfo.title)}--${name}.png`);
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const body = await page.screenshot({ path: file, mask });
  await testInfo.attach(name, { body, contentType: 'image/png' });
}

function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}

/**
 * Whether `value` (or a 12-character run of it) is anywhere in the page: its HTML, its
 * text, the values of its inputs and text areas, and local/session storage. Answers a
 * boolean so a failing assertion does not print the value.
 */
export async function pageShows(
  page: IJupyterLabPageFixture | Page,
  value: string
): Promise<boolean> {
  const runs = new Set<string>();
  const k = Math.min(12, value.length);
  for (let i = 0; i + k <= value.length; i++) {
    runs.add(value.slice(i, i + k));
  }
  return page.evaluate((runs: string[]) => {
    const texts = [document.documentElement.outerHTML, document.body.innerText];
    document.querySelectorAll('input, textarea').forEach(el => {
      texts.push((el as HTMLInputElement).value);
    });
    for (const store of [window.localStorage, window.sessionStorage]) {
      for (let i = 0; i < store.length; i++) {
        const key = store.key(i) ?? '';
        texts.push(key, store.getItem(key) ?? '');
      }
    }
    return texts.some(text => runs.some(run => text.includes(run)));
  }, Array.from(runs));
}

/** A notebook of one empty code cell on the qsecure kernel, as a `.ipynb` file holds it. */
export function qsecureNotebook(source = ''): string {
  return JSON.stringify({
    cells: [{ cell_type: 'code', execution_count: null, metadata: {}, outputs: [], source }],
    metadata: {
      kernelspec: { name: 'qsecure', display_name: 'Python 3 (qsecure)', language: 'python' }
    },
    nbformat: 4,
    nbformat_minor: 5
  });
}

/**
 * Write a clean qsecure notebook to `path` and open it (instead of File > New, whose
 * rename of Untitled.ipynb races a short autosave interval into "File Changed").
 */
export async function openNewNotebook(
  page: IJupyterLabPageFixture,
  path: string,
  source = ''
): Promise<void> {
  if (!(await page.contents.uploadContent(qsecureNotebook(source), 'text', path))) {
    throw new Error(`could not write ${path}`);
  }
  if (!(await page.notebook.openByPath(path))) {
    throw new Error(`could not open ${path}`);
  }
  await page.notebook.activate(path.split('/').pop() ?? path);
  // The kernel writes its language_info into the metadata once it is up: wait for it
  // and save that now. (A save still on its way when a cell changes would mark the
  // edited notebook clean when it returns; a later metadata change is new content.)
  await page.waitForFunction(
    () =>
      (window as any).jupyterapp.shell.currentWidget?.model?.getMetadata('language_info') !==
      undefined
  );
  await page.evaluate(async () => {
    await (window as any).jupyterapp.commands.execute('docmanager:save');
  });
  await page.waitForFunction(
    () => (window as any).jupyterapp.shell.currentWidget?.context?.model?.dirty === false
  );
}
