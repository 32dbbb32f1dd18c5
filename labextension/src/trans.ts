/**
 * The part of JupyterLab's `TranslationBundle` the pure modules use, so they can
 * be tested without @jupyterlab/translation. In the extension the real bundle
 * (`translator.load('jupyter_qsecure')`) is passed in.
 */

export interface ITrans {
  __(msgid: string, ...args: any[]): string;
  _n(msgid: string, msgidPlural: string, n: number, ...args: any[]): string;
}

/** `%1`, `%2`… replaced by the arguments; `%%` is a literal `%` (as Gettext.strfmt). */
export function strfmt(fmt: string, ...args: any[]): string {
  return fmt
    .replace(/%%/g, '%% ')
    .replace(/%(\d+)/g, (_, p1: string) => String(args[Number(p1) - 1]))
    .replace(/%% /g, '%');
}

/** English, untranslated (what JupyterLab's null translator does). */
export const identityTrans: ITrans = {
  __: (msgid, ...args) => strfmt(msgid, ...args),
  _n: (msgid, msgidPlural, n, ...args) => strfmt(n === 1 ? msgid : msgidPlural, n, ...args)
};
