/**
 * The client bound to JupyterLab's server connection: every call goes through
 * `ServerConnection.makeRequest`, which adds the server's token, the session
 * cookie and the XSRF header.
 */

import { ServerConnection } from '@jupyterlab/services';

import { QSecureClient, Requester } from './api';

export function makeClient(settings: ServerConnection.ISettings): QSecureClient {
  const request: Requester = (url, init) =>
    ServerConnection.makeRequest(url, { method: init.method, body: init.body }, settings);
  return new QSecureClient(settings.baseUrl, request);
}
