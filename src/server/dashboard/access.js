// The dashboard's calls to the server: the tokens, fetch() for the admin API,
// recording URLs and the words of an error response.

import { byTestId } from './page.js';

// The admin token (statistics, recordings, recording control) and the publish
// token (Talk) live in this tab's session storage only: asked once, sent as
// "Authorization: Bearer …" on every call, gone when the tab closes. A server
// without tokens (loopback development) never asks.
const TOKENS_KEY = 'earshot.tokens';
export const tokens = (() => {
  try {
    const saved = JSON.parse(sessionStorage.getItem(TOKENS_KEY) ?? '{}');
    return { admin: typeof saved.admin === 'string' ? saved.admin : '', publish: typeof saved.publish === 'string' ? saved.publish : '' };
  } catch {
    return { admin: '', publish: '' };
  }
})();
const tokenForm = byTestId('token-form');
const tokenError = byTestId('token-error');
/** Calls waiting for the operator to enter a token, resumed on submit. */
let afterSignIn = [];

export function authHeaders(role, headers = {}) {
  const token = role === 'publish' ? tokens.publish || tokens.admin : tokens.admin;
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

/** Shows the token form (once) and resolves when the operator has entered tokens. */
export function askForTokens(message) {
  tokenError.textContent = message ?? '';
  tokenError.hidden = !message;
  tokenForm.hidden = false;
  byTestId('admin-token').focus();
  return new Promise((resolve) => afterSignIn.push(resolve));
}

tokenForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const admin = byTestId('admin-token').value.trim();
  const publish = byTestId('publish-token').value.trim();
  // Either may be empty: a server may guard only publishing (its admin API open on loopback).
  if (!admin && !publish) {
    tokenError.textContent = 'Enter the admin token, the publish token, or both.';
    tokenError.hidden = false;
    return;
  }
  tokens.admin = admin;
  tokens.publish = publish;
  sessionStorage.setItem(TOKENS_KEY, JSON.stringify(tokens));
  tokenForm.hidden = true;
  const waiting = afterSignIn;
  afterSignIn = [];
  for (const resume of waiting) resume();
});

/**
 * fetch() for the admin API: sends the admin token; on 401/403 asks for the
 * tokens and tries again.
 */
export async function api(path, init = {}) {
  for (;;) {
    const res = await fetch(path, { ...init, headers: authHeaders('admin', init.headers) });
    if (res.status !== 401 && res.status !== 403) return res;
    await askForTokens(await refusalText(res, tokens.admin));
  }
}

/** URL of a recording; names may hold subdirectories, each segment is encoded. */
export const recordingUrl = (name) => `/recordings/${String(name).split('/').map(encodeURIComponent).join('/')}`;
/**
 * The listing's signed URL (plays in <audio> without a header), else the plain
 * one (open servers). A cluster's listing gives paths through this node to the
 * node that holds the file (`/cluster/recordings/<node>/<name>`).
 */
export const downloadUrl = (r) => {
  if (typeof r.url === 'string' && /^\/(cluster\/)?recordings\//.test(r.url)) return r.url;
  if (typeof r.download === 'string' && r.download.startsWith('/cluster/recordings/')) return r.download;
  return recordingUrl(r.name);
};

/**
 * Why a request for a token's role was refused, in the page's words: a token
 * the user typed and the server did not take (`sent`) says so; without one,
 * the server's own detail (which says which token is needed).
 */
export async function refusalText(res, sent) {
  if (!sent) return problemText(res);
  return res.status === 403
    ? 'That token is not the admin token (a publish token was given where the admin token is needed). Enter the admin token.'
    : 'That token was not accepted. Check it and enter it again.';
}

/** Reads an error response: problem+json `detail` (or `title`), else the status line. */
export async function problemText(res) {
  try {
    const body = await res.json();
    if (body && (body.detail || body.title)) return String(body.detail || body.title);
  } catch {
    // not JSON
  }
  return `${res.status} ${res.statusText}`.trim();
}
