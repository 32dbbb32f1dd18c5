/**
 * Playwright configuration of the UI tests: Galata's defaults, Debian's Chromium
 * (browser downloads are not possible on the CI machines: `executablePath`), and a
 * JupyterLab started by `jupyter_server_test_config.py` on a free port with the
 * jupyter-qsecure extensions and a throwaway OpenBao.
 *
 * Environment: CHROMIUM (default /usr/bin/chromium), QSECURE_PYTHON (the Python that
 * runs JupyterLab; default ../.venv/bin/python, else python3), QSECURE_UI_PORT.
 */
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const repo = path.resolve(__dirname, '..');
const venvPython = path.join(repo, '.venv', 'bin', 'python');
const python = process.env.QSECURE_PYTHON || (fs.existsSync(venvPython) ? venvPython : 'python3');

// Worker processes load this file again: they inherit the ports chosen here.
for (const name of ['QSECURE_UI_PORT', 'QSECURE_UI_REVIEW_PORT']) {
  if (!process.env[name]) {
    process.env[name] = execFileSync(
      python,
      ['-c', 'from jupyter_qsecure.testing.ports import free_loopback_port as f; print(f())'],
      { env: { ...process.env, PYTHONPATH: serverPythonPath() }, encoding: 'utf-8' }
    ).trim();
  }
}
// The servers' temporary folders: made here, removed when this (main) process exits,
// after the servers have stopped (a server stopped with kernels running may skip its own
// clean-up). Worker processes inherit the variable and leave it alone.
if (!process.env.QSECURE_UI_SCRATCH) {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'qsecure-ui-run-'));
  process.env.QSECURE_UI_SCRATCH = scratch;
  process.on('exit', () => fs.rmSync(scratch, { recursive: true, force: true }));
}
const port = process.env.QSECURE_UI_PORT;
const baseURL = `http://127.0.0.1:${port}`;
// Review and promotion run on a second server without OpenBao (the embedded default
// where the server signs approvals with its local reviewer key).
const reviewPort = process.env.QSECURE_UI_REVIEW_PORT;
const reviewURL = `http://127.0.0.1:${reviewPort}`;

function serverPythonPath() {
  const own = [repo, path.join(repo, 'server_ext')];
  return [...own, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter);
}

const chromiumArgs = require('./chromium-args');

module.exports = {
  ...baseConfig,
  testDir: './tests',
  outputDir: './test-results',
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'playwright-report' }]],
  timeout: 180000,
  expect: { timeout: 30000 },
  workers: 1,
  fullyParallel: false,
  retries: 0,
  use: {
    ...baseConfig.use,
    baseURL,
    // Playwright's own ffmpeg (videos) is a browser download too: screenshots only.
    video: 'off',
    trace: 'off',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: chromiumArgs
    }
  },
  projects: [
    { name: 'lab', testIgnore: /review\.spec\.ts/ },
    { name: 'review', testMatch: /review\.spec\.ts/, use: { baseURL: reviewURL } }
  ],
  webServer: [
    server(port, {}),
    server(reviewPort, { QSECURE_UI_OPENBAO: 'none', QSECURE_UI_WHEELHOUSE: '1' })
  ]
};

function server(port, env) {
  return {
    command: `${JSON.stringify(python)} -m jupyterlab --config jupyter_server_test_config.py`,
    cwd: __dirname,
    url: `http://127.0.0.1:${port}/lab`,
    timeout: 180000,
    reuseExistingServer: false,
    stdout: 'pipe',
    stderr: 'pipe',
    env: { ...process.env, PYTHONPATH: serverPythonPath(), QSECURE_UI_PORT: port, ...env },
    gracefulShutdown: { signal: 'SIGTERM', timeout: 15000 }
  };
}
