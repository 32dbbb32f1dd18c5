/** Chromium flags for a root user in a container, without network side traffic
 * (shared by the UI tests' Playwright config and benchmarks/lab_startup_page.js). */
module.exports = [
  '--no-sandbox',
  '--headless',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run'
];
