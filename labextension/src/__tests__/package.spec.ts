/**
 * The npm package, the Python package and the settings schema agree.
 */
import * as fs from 'fs';
import * as path from 'path';

import { DEFAULT_SETTINGS, readSettings } from '../settings';

const root = path.resolve(__dirname, '../../..');
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf-8');

describe('packaging', () => {
  it('has the same version in package.json and jupyter_qsecure/_version.py', () => {
    const pkg = JSON.parse(read('package.json'));
    const py = /__version__\s*=\s*"([^"]+)"/.exec(read('jupyter_qsecure/_version.py'))![1];
    expect(pkg.version).toBe(py);
  });

  it('names the build output and install.json the way pyproject ships them', () => {
    const pkg = JSON.parse(read('package.json'));
    expect(pkg.jupyterlab.outputDir).toBe('jupyter_qsecure/labextension');
    const install = JSON.parse(read('install.json'));
    expect(install.packageName).toBe('jupyter-qsecure');
    const pyproject = read('pyproject.toml');
    expect(pyproject).toContain(`"share/jupyter/labextensions/${pkg.name}"`);
    expect(pyproject).toContain(`"share/jupyter/labextensions/${pkg.name}/install.json"`);
  });
});

describe('settings', () => {
  const schema = JSON.parse(read('labextension/schema/plugin.json'));

  it('has a schema default for every setting, equal to the code default', () => {
    const defaults = Object.fromEntries(
      Object.entries(schema.properties as Record<string, { default: unknown }>).map(([k, v]) => [
        k,
        v.default
      ])
    );
    expect(defaults).toEqual(DEFAULT_SETTINGS);
  });

  it('takes valid values and falls back to defaults for anything else', () => {
    expect(
      readSettings({ statusRefreshSeconds: 60, jobsLimit: 10, autosaveNotification: false })
    ).toEqual({
      ...DEFAULT_SETTINGS,
      statusRefreshSeconds: 60,
      jobsLimit: 10,
      autosaveNotification: false
    });
    expect(
      readSettings({ statusRefreshSeconds: 1, jobsLimit: 1.5, autosaveNotification: 'no' })
    ).toEqual(DEFAULT_SETTINGS);
  });
});
