// earshot dashboard: live statistics from GET /events, recording control,
// recordings with players, and a "Talk" button that publishes the microphone
// over WHIP. Plain browser JavaScript, no dependencies; every value from the
// server is treated as possibly missing and is only ever set as text.

const SPARK_SAMPLES = 60;
const METER_FLOOR_DB = -60;
const LOG_LINES = 60;
const ICE_GATHERING_TIMEOUT_MS = 3000;

const $ = (selector, root = document) => root.querySelector(selector);
const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const fmt = {
  int: (v) => (num(v) === null ? '–' : Math.round(v).toLocaleString('en')),
  percent: (v, digits = 0) => (num(v) === null ? '–' : `${(v * 100).toFixed(digits)} %`),
  ms: (v) => (num(v) === null ? '–' : v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(1)} ms`),
  db: (v) => (num(v) === null ? '–' : v <= -120 ? 'silence' : `${v.toFixed(1)} dBFS`),
  bitrate: (v) => (num(v) === null ? '–' : v >= 1e6 ? `${(v / 1e6).toFixed(2)} Mbit/s` : `${(v / 1000).toFixed(1)} kbit/s`),
  seconds: (v) => {
    if (num(v) === null) return '–';
    const s = Math.round(v);
    return s >= 60 ? `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}` : `${v.toFixed(1)} s`;
  },
  bytes: (v) => (num(v) === null ? '–' : v >= 1048576 ? `${(v / 1048576).toFixed(1)} MiB` : `${Math.max(1, Math.round(v / 1024))} KiB`),
  time: (v) => {
    const d = new Date(v ?? Date.now());
    return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString('en-GB', { hour12: false });
  },
};

// ---------------------------------------------------------------- tokens

// The admin token (statistics, recordings, recording control) and the publish
// token (Talk) live in this tab's session storage only: asked once, sent as
// "Authorization: Bearer …" on every call, gone when the tab closes. A server
// without tokens (loopback development) never asks.
const TOKENS_KEY = 'earshot.tokens';
const tokens = (() => {
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

function authHeaders(role, headers = {}) {
  const token = role === 'publish' ? tokens.publish || tokens.admin : tokens.admin;
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

/** Shows the token form (once) and resolves when the operator has entered tokens. */
function askForTokens(message) {
  tokenError.textContent = message ?? '';
  tokenError.hidden = !message;
  tokenForm.hidden = false;
  byTestId('admin-token').focus();
  return new Promise((resolve) => afterSignIn.push(resolve));
}

tokenForm.addEventListener('submit', (e) => {
  e.preventDefault();
  tokens.admin = byTestId('admin-token').value.trim();
  tokens.publish = byTestId('publish-token').value.trim();
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
async function api(path, init = {}) {
  for (;;) {
    const res = await fetch(path, { ...init, headers: authHeaders('admin', init.headers) });
    if (res.status !== 401 && res.status !== 403) return res;
    await askForTokens(await problemText(res));
  }
}

/** URL of a recording; names may hold subdirectories, each segment is encoded. */
const recordingUrl = (name) => `/recordings/${String(name).split('/').map(encodeURIComponent).join('/')}`;
/** The listing's signed URL (plays in <audio> without a header), else the plain one (open servers). */
const downloadUrl = (r) => (typeof r.url === 'string' && r.url.startsWith('/recordings/') ? r.url : recordingUrl(r.name));

/** Reads an error response: problem+json `detail` (or `title`), else the status line. */
async function problemText(res) {
  try {
    const body = await res.json();
    if (body && (body.detail || body.title)) return String(body.detail || body.title);
  } catch {
    // not JSON
  }
  return `${res.status} ${res.statusText}`.trim();
}

// ---------------------------------------------------------------- tiles

const tiles = {
  peers: byTestId('tile-peers'),
  rooms: byTestId('tile-rooms'),
  pool: byTestId('tile-pool'),
  poolBar: byTestId('tile-pool-bar'),
  lag: byTestId('tile-lag'),
  sessions: byTestId('tile-sessions'),
};

function renderServer(server) {
  const s = server ?? {};
  tiles.peers.textContent = fmt.int(s.peers);
  tiles.rooms.textContent = fmt.int(s.rooms);
  const utilization = num(s.pool?.utilization);
  tiles.pool.textContent = fmt.percent(utilization);
  tiles.poolBar.style.width = `${Math.min(100, Math.max(0, (utilization ?? 0) * 100))}%`;
  tiles.lag.textContent = fmt.ms(s.eventLoopDelayMs?.p99);
  tiles.sessions.textContent = `${fmt.int(s.sessionsStarted)} / ${fmt.int(s.sessionsEnded)}`;
}

// ---------------------------------------------------------------- peer cards

const peersEl = byTestId('peers');
const peersEmpty = byTestId('peers-empty');
const cardTemplate = $('#peer-card');
/** peer id → { el, parts, loss: number[], jitter: number[] } */
const cards = new Map();
let myPeer = null;

function createCard(peer) {
  const el = cardTemplate.content.firstElementChild.cloneNode(true);
  el.dataset.peer = peer;
  const part = (id) => byTestId(id, el);
  const parts = {
    name: part('peer-name'),
    you: part('you'),
    state: part('peer-state'),
    room: part('peer-room'),
    pipeline: part('peer-pipeline'),
    level: part('level'),
    rms: part('level-rms'),
    peak: part('level-peak'),
    levelText: part('level-text'),
    speaking: part('speaking'),
    speakingLabel: $('.speaking-label', el),
    bitrate: part('bitrate'),
    latency: part('latency'),
    loss: part('loss'),
    lossSpark: $('polyline', part('loss-spark')),
    jitter: part('jitter'),
    jitterSpark: $('polyline', part('jitter-spark')),
    recInfo: part('recording-info'),
    record: part('record-button'),
    listen: part('listen-button'),
    listenStatus: part('listen-status'),
    error: part('card-error'),
  };
  parts.name.textContent = peer;
  const card = { el, parts, loss: [], jitter: [], recording: false, busy: false, listening: null };
  parts.record.addEventListener('click', () => toggleRecording(peer, card));
  parts.listen.addEventListener('click', () => void (card.listening ? stopListening(card) : startListening(peer, card)));
  return card;
}

/** dBFS → 0..100 % of the meter (−60 dBFS and below is empty). */
const meterPercent = (db) => (num(db) === null ? 0 : Math.min(100, Math.max(0, ((db - METER_FLOOR_DB) / -METER_FLOOR_DB) * 100)));

function drawSpark(polyline, values, floor) {
  const max = Math.max(floor, ...values);
  const n = values.length;
  const points = values.map((v, i) => {
    const x = n === 1 ? 120 : (i / (SPARK_SAMPLES - 1)) * 120 + (SPARK_SAMPLES - n) * (120 / (SPARK_SAMPLES - 1));
    const y = 27 - (Math.max(0, v) / max) * 25;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  polyline.setAttribute('points', points.join(' '));
}

function pushSample(series, value) {
  series.push(num(value) ?? 0);
  if (series.length > SPARK_SAMPLES) series.shift();
}

function updateCard(card, p) {
  const { el, parts } = card;
  const state = typeof p.state === 'string' ? p.state : 'unknown';
  el.dataset.state = state;
  parts.state.textContent = state;
  parts.state.dataset.state = state;
  parts.room.textContent = p.room ? `room ${p.room}` : 'room –';
  parts.pipeline.textContent = p.pipeline ? `pipeline ${p.pipeline}` : 'pipeline –';
  const mine = p.peer === myPeer;
  parts.you.hidden = !mine;
  el.classList.toggle('mine', mine);

  const audio = p.audio ?? {};
  const rms = num(audio.rmsDbfs);
  const peak = num(audio.peakDbfs);
  parts.level.dataset.rms = rms === null ? '' : String(rms);
  parts.level.dataset.peak = peak === null ? '' : String(peak);
  parts.level.setAttribute('aria-valuenow', String(Math.max(METER_FLOOR_DB, rms ?? METER_FLOOR_DB)));
  parts.rms.dataset.rms = parts.level.dataset.rms;
  parts.rms.style.clipPath = `inset(0 ${(100 - meterPercent(rms)).toFixed(1)}% 0 0)`;
  parts.peak.style.left = `calc(${meterPercent(peak).toFixed(1)}% - 2px)`;
  parts.peak.hidden = peak === null || peak <= METER_FLOOR_DB;
  parts.levelText.textContent = `RMS ${fmt.db(rms)} · peak ${fmt.db(peak)}`;

  // `speaking` is the server's debounced decision; without it, fall back to the raw VAD.
  const vad = num(audio.vad);
  const speaking = typeof audio.speaking === 'boolean' ? audio.speaking : vad === null ? null : vad >= 0.5;
  parts.speaking.dataset.active = speaking === null ? 'unknown' : String(speaking);
  parts.speakingLabel.textContent = speaking === null ? 'no VAD' : speaking ? 'speaking' : 'silent';
  parts.speaking.title = vad === null ? 'No voice activity (the pipeline has no denoise stage)' : `Voice activity ${Math.round(vad * 100)} %`;

  const rtp = p.rtp ?? {};
  parts.bitrate.textContent = fmt.bitrate(rtp.bitrate);
  // The last 10 s: a start-up spike would otherwise dominate the since-start figures for minutes.
  const latency = p.processing?.recentLatencyMs ?? p.processing?.latencyMs ?? {};
  parts.latency.textContent = num(latency.p50) === null && num(latency.p99) === null ? '–' : `${fmt.ms(latency.p50)} / ${fmt.ms(latency.p99)}`;
  pushSample(card.loss, rtp.lossRatio);
  pushSample(card.jitter, num(rtp.jitter) === null ? null : rtp.jitter * 1000);
  parts.loss.textContent = fmt.percent(rtp.lossRatio, 1);
  parts.jitter.textContent = fmt.ms(num(rtp.jitter) === null ? null : rtp.jitter * 1000);
  drawSpark(parts.lossSpark, card.loss, 0.02);
  drawSpark(parts.jitterSpark, card.jitter, 20);

  const rec = p.recording && typeof p.recording === 'object' ? p.recording : null;
  card.recording = rec?.state === 'recording';
  parts.recInfo.dataset.recording = String(card.recording);
  parts.recInfo.textContent = rec ? `${card.recording ? '' : `${rec.state ?? 'stopped'} · `}${rec.name ?? ''} · ${fmt.seconds(rec.seconds)}` : 'not recording';
  parts.recInfo.title = rec?.name ?? '';
  if (!card.busy) {
    parts.record.textContent = card.recording ? 'Stop recording' : 'Record';
    parts.record.dataset.recording = String(card.recording);
    parts.record.disabled = state !== 'connected' && state !== 'connecting';
  }
}

function renderPeers(peers) {
  const list = Array.isArray(peers) ? peers.filter((p) => p && typeof p.peer === 'string' && p.state !== 'ended') : [];
  const seen = new Set();
  for (const p of list) {
    seen.add(p.peer);
    let card = cards.get(p.peer);
    if (!card) {
      card = createCard(p.peer);
      cards.set(p.peer, card);
      peersEl.append(card.el);
    }
    updateCard(card, p);
  }
  const recording = list.map((p) => p.recording).filter((r) => r?.state === 'recording' && typeof r.name === 'string');
  const live = new Set(recording.map((r) => r.name));
  if (live.size !== liveRecordings.size || [...live].some((n) => !liveRecordings.has(n))) {
    const started = [...live].some((n) => !liveRecordings.has(n) && !knownRecordings?.has(n));
    liveRecordings = live;
    updateRecordingStates();
    if (started) void refreshRecordings(); // list a new recording while it is being written
  }
  for (const r of recording) {
    const row = recordingsEl.querySelector(`[data-testid="recording-row"][data-name="${CSS.escape(r.name)}"]`);
    if (row) $('.recording-meta > span', row).textContent = recordingMeta(r);
  }
  for (const [peer, card] of cards) {
    if (seen.has(peer)) continue;
    if (card.listening) void stopListening(card);
    card.el.remove();
    cards.delete(peer);
  }
  peersEmpty.hidden = cards.size > 0;
}

async function toggleRecording(peer, card) {
  const { parts } = card;
  const stopping = card.recording;
  card.busy = true;
  parts.record.disabled = true;
  parts.error.hidden = true;
  try {
    const res = await api(`/peers/${encodeURIComponent(peer)}/recording`, { method: stopping ? 'DELETE' : 'POST' });
    if (!res.ok) throw new Error(await problemText(res));
    if (stopping) markFinalized((await res.json().catch(() => null))?.recordings);
    card.recording = !stopping;
    parts.record.textContent = card.recording ? 'Stop recording' : 'Record';
    parts.record.dataset.recording = String(card.recording);
    if (stopping) void refreshRecordings();
  } catch (e) {
    parts.error.textContent = e instanceof Error ? e.message : String(e);
    parts.error.hidden = false;
  } finally {
    card.busy = false;
    parts.record.disabled = false;
  }
}

// ---------------------------------------------------------------- listen (WHEP play)

/**
 * Plays a peer's processed audio: a receive-only offer POSTed to /whep/:peer
 * (admin token), the answer applied, the track played in an <audio> element.
 * While it plays, the card shows what this browser's WebRTC stack reports
 * receiving (packets, audio level), read from getStats() every second.
 */
async function startListening(peer, card) {
  const { parts } = card;
  parts.listen.disabled = true;
  parts.error.hidden = true;
  const pc = new RTCPeerConnection();
  const audio = new Audio();
  audio.autoplay = true;
  try {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addEventListener('track', (e) => {
      audio.srcObject = e.streams[0] ?? new MediaStream([e.track]);
      void audio.play().catch(() => undefined);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    const post = () => fetch(`/whep/${encodeURIComponent(peer)}`, { method: 'POST', headers: authHeaders('admin', { 'Content-Type': 'application/sdp' }), body: pc.localDescription.sdp });
    let res = await post();
    if (res.status === 401 || res.status === 403) {
      await askForTokens(await problemText(res));
      res = await post();
    }
    if (res.status !== 201) throw new Error(await problemText(res));
    const location = new URL(res.headers.get('Location') ?? '', res.url).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    const timer = setInterval(() => void showListening(card), 1000);
    card.listening = { pc, audio, location, timer };
    pc.addEventListener('connectionstatechange', () => {
      if (card.listening?.pc === pc && (pc.connectionState === 'failed' || pc.connectionState === 'closed')) void stopListening(card, 'The listening connection ended.');
    });
    parts.listen.textContent = 'Stop listening';
    parts.listen.dataset.listening = 'true';
    parts.listenStatus.hidden = false;
    parts.listenStatus.textContent = 'Connecting…';
  } catch (e) {
    pc.close();
    parts.error.textContent = e instanceof Error ? e.message : String(e);
    parts.error.hidden = false;
  } finally {
    parts.listen.disabled = false;
  }
}

async function showListening(card) {
  const listening = card.listening;
  if (!listening) return;
  const stats = await listening.pc.getStats();
  for (const s of stats.values()) {
    if (s.type !== 'inbound-rtp' || s.kind !== 'audio') continue;
    const level = num(s.audioLevel);
    const el = card.parts.listenStatus;
    el.dataset.packets = String(s.packetsReceived ?? 0);
    el.dataset.level = level === null ? '' : String(level);
    el.textContent = `Listening · ${s.packetsReceived ?? 0} packets · level ${level === null ? '–' : fmt.db(20 * Math.log10(Math.max(level, 1e-6)))}`;
  }
}

async function stopListening(card, reason = '') {
  const listening = card.listening;
  if (!listening) return;
  card.listening = null;
  clearInterval(listening.timer);
  const { parts } = card;
  parts.listen.textContent = 'Listen';
  parts.listen.dataset.listening = 'false';
  parts.listenStatus.hidden = true;
  listening.audio.srcObject = null;
  // 404: the server ended it already (the peer's stream ended).
  await fetch(listening.location, { method: 'DELETE', headers: authHeaders('admin') }).catch(() => undefined);
  listening.pc.close();
  if (reason) {
    parts.error.textContent = reason;
    parts.error.hidden = false;
  }
}

// ---------------------------------------------------------------- event log

const logEl = byTestId('log');

function log(text, kind = '', at = undefined) {
  const li = document.createElement('li');
  if (kind) li.className = kind;
  const time = document.createElement('time');
  time.textContent = fmt.time(at);
  li.append(time, document.createTextNode(text));
  logEl.prepend(li);
  while (logEl.children.length > LOG_LINES) logEl.lastElementChild.remove();
}

// ---------------------------------------------------------------- recordings

const recordingsEl = byTestId('recordings');
const recordingsEmpty = byTestId('recordings-empty');
/** Names already listed, so new ones can be highlighted. */
let knownRecordings = null;
/** Files live peers are writing now (from the stats), and files known to be finalized since. */
let liveRecordings = new Set();
const finalizedRecordings = new Set();
let refreshing = null;
let refreshAgain = false;

/** Names from `recordings` of a session event or a DELETE response (strings or { name }). */
function recordingNames(list) {
  return (Array.isArray(list) ? list : []).map((r) => (typeof r === 'string' ? r : r?.name)).filter((n) => typeof n === 'string');
}

function markFinalized(list) {
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
    const live = liveRecordings.has(row.dataset.name) && !finalizedRecordings.has(row.dataset.name);
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
  return `${fmt.seconds(r.seconds)} · ${fmt.bytes(r.bytes)}${rate}${channels}`;
}

function recordingRow(r, fresh) {
  const li = document.createElement('li');
  li.className = `recording${fresh ? ' fresh' : ''}`;
  li.dataset.testid = 'recording-row';
  li.dataset.name = r.name;
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
  audio.preload = 'metadata';
  audio.src = downloadUrl(r);
  audio.dataset.testid = 'recording-audio';
  const link = document.createElement('a');
  link.href = downloadUrl(r);
  link.download = String(r.name).split('/').pop();
  link.textContent = 'Download';
  link.dataset.testid = 'recording-download';
  li.append(name, link, meta, audio);
  return li;
}

async function loadRecordings() {
  const res = await api('/recordings?limit=200', { cache: 'no-store' });
  if (!res.ok) throw new Error(await problemText(res));
  const body = await res.json();
  const list = (Array.isArray(body?.recordings) ? body.recordings : []).filter((r) => r && typeof r.name === 'string');
  list.sort((a, b) => String(b.modifiedAt ?? '').localeCompare(String(a.modifiedAt ?? '')) || a.name.localeCompare(b.name));
  // Rows that are already there stay (a playing <audio> is not interrupted); their figures are updated.
  const existing = new Map([...recordingsEl.children].map((li) => [li.dataset.name, li]));
  const rows = list.map((r) => {
    const row = existing.get(r.name);
    if (!row) return recordingRow(r, knownRecordings !== null && !knownRecordings.has(r.name));
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
  knownRecordings = new Set(list.map((r) => r.name));
  recordingsEmpty.hidden = list.length > 0;
  updateRecordingStates();
}

/** Refreshes the list; calls during a refresh coalesce into one more. */
function refreshRecordings() {
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

byTestId('recordings-refresh').addEventListener('click', () => void refreshRecordings());

// ---------------------------------------------------------------- live events

const connEl = byTestId('connection');

/**
 * GET /events over fetch, not EventSource: EventSource cannot send the admin
 * token. Parses the text/event-stream framing itself and reconnects after
 * 2 s (what the server asks for) when the stream ends or fails.
 */
async function connect() {
  const handlers = new Map();
  const on = (type, fn) => handlers.set(type, fn);
  const setState = (state, text) => {
    connEl.dataset.state = state;
    connEl.textContent = text;
  };
  on('stats', (e) => {
    const data = parse(e.data);
    if (!data) return;
    renderServer(data.server);
    renderPeers(data.peers);
  });
  on('session', (e) => {
    const s = parse(e.data);
    if (!s) return;
    const who = `${s.peer ?? '?'} in ${s.room ?? '?'}`;
    if (s.type === 'started') log(`${who} started (${s.pipeline ?? '?'})`, 'started', s.at);
    else if (s.type === 'ended') {
      markFinalized(s.recordings);
      const files = recordingNames(s.recordings).length;
      log(`${who} ended${s.reason ? ` (${s.reason})` : ''}${files ? ` · ${files} recording${files > 1 ? 's' : ''}` : ''}`, 'ended', s.at);
      void refreshRecordings();
    }
  });
  on('processor', (e) => {
    const p = parse(e.data);
    if (!p) return;
    let data = '';
    try {
      data = p.data === undefined ? '' : ` ${JSON.stringify(p.data).slice(0, 80)}`;
    } catch {
      // unserializable data is just not shown
    }
    log(`${p.peerId ?? '?'} · ${p.processor ?? '?'}: ${p.event ?? ''}${data}`, '', p.at);
  });
  for (;;) {
    try {
      const res = await api('/events?interval=250', { headers: { Accept: 'text/event-stream' }, cache: 'no-store' });
      if (!res.ok || !res.body) throw new Error(await problemText(res));
      setState('live', 'live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let type = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) type = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (data.length > 0) handlers.get(type)?.({ data: data.join('\n') });
        }
      }
    } catch (e) {
      log(`events: ${e instanceof Error ? e.message : e}`, 'ended');
    }
    setState('connecting', 'reconnecting…');
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function parse(text) {
  try {
    const v = JSON.parse(text);
    return v && typeof v === 'object' ? v : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- talk (WHIP publish)

const talkButton = byTestId('talk-button');
const talkStatus = byTestId('talk-status');
/** The live publication: { pc, stream, location, peer } */
let talk = null;

function setTalk(state, text = '', error = false) {
  talkButton.dataset.state = state;
  talkButton.textContent = state === 'live' ? 'Stop' : state === 'busy' ? '…' : 'Talk';
  talkButton.disabled = state === 'busy';
  talkStatus.textContent = text;
  talkStatus.classList.toggle('error', error);
}

/** The server does not trickle: the offer must hold every candidate. */
function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => pc.iceGatheringState === 'complete' && done();
    // Whatever was gathered by then is used; host candidates come in milliseconds.
    const timer = setTimeout(done, ICE_GATHERING_TIMEOUT_MS);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

function randomPeerId() {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `web-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

async function startTalk() {
  setTalk('busy', 'Asking for the microphone…');
  let stream = null;
  let pc = null;
  try {
    if (!navigator.mediaDevices?.getUserMedia) throw new Error('This page needs a secure context (https or localhost) to use the microphone.');
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    pc = new RTCPeerConnection();
    const [track] = stream.getAudioTracks();
    pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    setTalk('busy', 'Connecting…');
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    const peer = randomPeerId();
    let res = await fetch(`/whip/dashboard/${peer}`, {
      method: 'POST',
      headers: authHeaders('publish', { 'Content-Type': 'application/sdp' }),
      body: pc.localDescription.sdp,
    });
    if (res.status === 401 || res.status === 403) {
      setTalk('busy', 'Publishing needs a token…');
      await askForTokens(await problemText(res));
      res = await fetch(`/whip/dashboard/${peer}`, { method: 'POST', headers: authHeaders('publish', { 'Content-Type': 'application/sdp' }), body: pc.localDescription.sdp });
    }
    if (res.status !== 201) throw new Error(await problemText(res));
    const location = new URL(res.headers.get('Location') ?? '', res.url).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    talk = { pc, stream, location, peer };
    myPeer = peer;
    pc.addEventListener('connectionstatechange', () => {
      if (talk?.pc !== pc) return;
      if (pc.connectionState === 'failed') {
        void stopTalk('The connection to the server failed.');
      } else if (pc.connectionState === 'connected') setTalk('live', `Live as ${peer}`);
    });
    setTalk('live', `Connecting as ${peer}…`);
  } catch (e) {
    pc?.close();
    for (const t of stream?.getTracks() ?? []) t.stop();
    setTalk('idle', e instanceof Error ? e.message : String(e), true);
  }
}

async function stopTalk(reason = '') {
  const current = talk;
  if (!current) return;
  talk = null;
  setTalk('busy', 'Stopping…');
  let error = reason;
  try {
    const res = await fetch(current.location, { method: 'DELETE', headers: authHeaders('publish') });
    // 404: the server already ended it (timeout, replaced); nothing left to stop.
    if (res.ok) markFinalized((await res.json().catch(() => null))?.recordings);
    else if (res.status !== 404) error = await problemText(res);
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  } finally {
    current.pc.close();
    for (const t of current.stream.getTracks()) t.stop();
  }
  setTalk('idle', error || 'Stopped; the recording is below.', Boolean(error));
  await refreshRecordings();
}

talkButton.addEventListener('click', () => void (talk ? stopTalk() : startTalk()));
// A page that goes away ends its session right away instead of at the media timeout.
window.addEventListener('pagehide', () => {
  if (talk) fetch(talk.location, { method: 'DELETE', keepalive: true, headers: authHeaders('publish') }).catch(() => undefined);
});

/**
 * Asks for the tokens up front when /health says the server needs them and
 * this tab has none yet, so the page never fires requests that fail.
 */
async function start() {
  try {
    const health = await (await fetch('/health', { cache: 'no-store' })).json();
    const needsAdmin = health?.access?.admin === 'token' && !tokens.admin;
    if (needsAdmin) await askForTokens();
  } catch {
    // /health unreadable: the API calls below ask for tokens if they get 401
  }
  void connect();
  void refreshRecordings();
}

void start();
