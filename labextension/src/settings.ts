/** The extension's settings (schema/plugin.json), read and checked. Pure TypeScript. */

export interface IQSecureSettings {
  /** How often the status bar asks the server (seconds). */
  statusRefreshSeconds: number;
  /** Credential time left under which the status bar turns amber (minutes). */
  credentialWarningMinutes: number;
  /** How many of the newest jobs the jobs panel lists. */
  jobsLimit: number;
  /** Show a notification when an autosave is refused (the toolbar indicator turns red either way). */
  autosaveNotification: boolean;
}

export const DEFAULT_SETTINGS: IQSecureSettings = {
  statusRefreshSeconds: 30,
  credentialWarningMinutes: 5,
  jobsLimit: 100,
  autosaveNotification: true
};

/** Settings from the Settings Editor, each checked, defaults for anything else. */
export function readSettings(composite: Record<string, unknown>): IQSecureSettings {
  const int = (key: keyof IQSecureSettings, min: number, max: number): number => {
    const value = composite[key];
    return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
      ? value
      : (DEFAULT_SETTINGS[key] as number);
  };
  return {
    statusRefreshSeconds: int('statusRefreshSeconds', 5, 3600),
    credentialWarningMinutes: int('credentialWarningMinutes', 0, 1440),
    jobsLimit: int('jobsLimit', 1, 1000),
    autosaveNotification:
      typeof composite.autosaveNotification === 'boolean'
        ? composite.autosaveNotification
        : DEFAULT_SETTINGS.autosaveNotification
  };
}
