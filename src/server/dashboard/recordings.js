// The dashboard's recordings list: players and downloads, new files highlighted,
// files being written marked until they are final. On a cluster node, every
// node's recordings (cluster.js), each saying which node holds it.

import { api, downloadUrl, problemText, recordingUrl } from './access.js';
import { clusterNode } from './cluster.js';
import { $, byTestId, fmt, log, num } from './page.js';

const recordingsEl = byTestId('recordings');
const recordingsEmpty = byTestId('recordings-empty');
/** Names already listed, so new ones can be highlighted. */
let knownRecordings = null;
/** Most rows shown: the newest. */
const SHOWN = 200;
/** Files live peers are writing now (from the stats), and files known to be finalized since. */
let liveRecordings = new Set();
const finalizedRecordings = new Set();
let refreshing = null;
let refreshAgain = false;
/** The refresh that renews the signed links before they expire (a tab left open for hours keeps working links). */
let renewal = null;

/** Names from `recordings` of a session event or a DELETE response (strings or { name }). */
export function recordingNames(list) {
  return (Array.isArray(list) ? list : []).map((r) => (typeof r === 'string' ? r : r?.name)).filter((n) => typeof n === 'string');
}

export function markFinalized(list) {
  for (const name of recordingNames(list)) finalizedRecordings.add(name);
  updateRecordingStates();
}

/**
 * A file being written has no final length in its header yet, so its player
 * would show no duration: such rows say "recording…", and their player is
 * reloaded once the file is final (unless someone is listening to it).
 */
function updateRecordingStates() {
  for (const row of recordingsEl.children) {
    const live = liveRecordings.has(row.dataset.key) && !finalizedRecordings.has(row.dataset.name);
    if (row.dataset.live === String(live)) continue;
    const wasLive = row.dataset.live === 'true';
    row.dataset.live = String(live);
    $('.recording-live', row).hidden = !live;
    const audio = $('audio', row);
    // A new URL, so the media cache cannot hand back the unfinished file.
    if (wasLive && !live && audio.paused) {
      const url = row.dataset.url ?? recordingUrl(row.dataset.name);
      audio.src = `${url}${url.includes('?') ? '&' : '?'}final=${Date.now()}`;
    }
  }
}

function recordingMeta(r) {
  const rate = num(r.sampleRate) === null ? '' : ` · ${r.sampleRate / 1000} kHz`;
  const channels = r.channels === 2 ? ' stereo' : r.channels === 1 ? ' mono' : '';
  const node = typeof r.node === 'string' ? ` · node ${r.node}` : '';
  return `${fmt.seconds(r.seconds)} · ${fmt.bytes(r.bytes)}${rate}${channels}${node}`;
}

function recordingRow(r, fresh) {
  const li = document.createElement('li');
  li.className = `recording${fresh ? ' fresh' : ''}`;
  li.dataset.testid = 'recording-row';
  li.dataset.name = r.name;
  li.dataset.key = rowKey(r);
  li.dataset.url = downloadUrl(r);
  const name = document.createElement('span');
  name.className = 'recording-name';
  name.textContent = r.name;
  name.title = r.name;
  const meta = document.createElement('span');
  meta.className = 'recording-meta';
  const metaText = document.createElement('span');
  metaText.textContent = recordingMeta(r);
  const live = document.createElement('span');
  live.className = 'recording-live';
  live.textContent = ' · recording…';
  live.hidden = true;
  meta.append(metaText, live);
  const audio = document.createElement('audio');
  audio.controls = true;
  // Nothing is fetched until the user plays: a player that preloads holds one of the client's
  // few download slots (--max-downloads-per-client, 4) open, and past four recordings the rest
  // were refused (429) and their players dead.
  audio.preload = 'none';
  audio.src = downloadUrl(r);
  audio.dataset.testid = 'recording-audio';
  // Named for a screen reader: every row's player and link would otherwise read the same.
  audio.setAttribute('aria-label', `Play ${r.name}`);
  const link = document.createElement('a');
  link.href = downloadUrl(r);
  link.download = String(r.name).split('/').pop();
  link.textContent = 'Download';
  link.setAttribute('aria-label', `Download ${r.name}`);
  link.dataset.testid = 'recording-download';
  li.append(name, link, meta, audio);
  return li;
}

/** A row's identity: its name, and on a cluster its node (two nodes may hold files of the same name). */
const rowKey = (r) => (typeof r.node === 'string' ? `${r.node}/${r.name}` : r.name);

async function loadRecordings() {
  // The newest: in name order, a long-running server's first page is its oldest recordings.
  // A cluster lists every node's newest 1000, newest first.
  const res = await api(clusterNode ? '/cluster/recordings' : `/recordings?limit=${SHOWN}&order=newest`, { cache: 'no-store' });
  if (!res.ok) throw new Error(await problemText(res));
  const body = await res.json();
  const list = (Array.isArray(body?.recordings) ? body.recordings : []).filter((r) => r && typeof r.name === 'string');
  list.sort((a, b) => String(b.modifiedAt ?? '').localeCompare(String(a.modifiedAt ?? '')) || a.name.localeCompare(b.name));
  list.splice(SHOWN);
  // Rows that are already there stay (a playing <audio> is not interrupted); their figures are updated.
  const existing = new Map([...recordingsEl.children].map((li) => [li.dataset.key, li]));
  const rows = list.map((r) => {
    const row = existing.get(rowKey(r));
    if (!row) return recordingRow(r, knownRecordings !== null && !knownRecordings.has(rowKey(r)));
    $('.recording-meta > span', row).textContent = recordingMeta(r);
    // Signed links expire: keep the newest, and hand it to a player that is not playing.
    row.dataset.url = downloadUrl(r);
    const audio = $('audio', row);
    const link = $('a', row);
    if (link) link.href = row.dataset.url;
    if (audio?.paused && audio.currentTime === 0) audio.src = row.dataset.url;
    return row;
  });
  recordingsEl.replaceChildren(...rows);
  knownRecordings = new Set(list.map(rowKey));
  // Links last linkSeconds (an hour by default): list again well before, for fresh ones.
  const linkSeconds = Number(body?.linkSeconds);
  clearTimeout(renewal);
  if (linkSeconds > 0) renewal = setTimeout(() => void refreshRecordings(), Math.max(10, linkSeconds * 0.8) * 1000);
  recordingsEmpty.hidden = list.length > 0;
  updateRecordingStates();
}

/** Refreshes the list; calls during a refresh coalesce into one more. */
export function refreshRecordings() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = loadRecordings()
    .catch((e) => log(`recordings: ${e instanceof Error ? e.message : e}`, 'ended'))
    .finally(() => {
      refreshing = null;
      if (refreshAgain) {
        refreshAgain = false;
        void refreshRecordings();
      }
    });
  return refreshing;
}

/**
 * The recordings live peers are writing now (from the statistics; on a
 * cluster each with the `node` of its peer): their rows say so and show their
 * figures so far.
 */
export function showLiveRecordings(recording) {
  const live = new Set(recording.map(rowKey));
  const added = [...live].filter((k) => !liveRecordings.has(k));
  const stopped = [...liveRecordings].some((k) => !live.has(k));
  if (added.length > 0 || stopped) {
    liveRecordings = live;
    updateRecordingStates();
    // A new recording is listed while it is being written; a stopped one gets its final figures (a session's
    // end on this node also refreshes, from its event; on a cluster, another node's is no event of this page).
    if (stopped || added.some((k) => !knownRecordings?.has(k))) void refreshRecordings();
  }
  for (const r of recording) {
    const row = recordingsEl.querySelector(`[data-testid="recording-row"][data-key="${CSS.escape(rowKey(r))}"]`);
    if (row) $('.recording-meta > span', row).textContent = recordingMeta(r);
  }
}

byTestId('recordings-refresh').addEventListener('click', () => void refreshRecordings());
