// earshot dashboard: live statistics from GET /events (on a cluster node, from
// GET /cluster/stats: cluster.js), recording control,
// recordings with players, and a "Talk" button that publishes the microphone
// over WHIP. Plain browser JavaScript (ES modules, no build step), no
// dependencies; every value from the server is treated as possibly missing and
// is only ever set as text. This module draws the tiles and peer cards from the
// live events; the other parts are modules of their own: page.js (helpers, event
// log), access.js (tokens, API calls), recordings.js, listen.js (WHEP), talk.js
// (WHIP), webrtc.js.

import { api, askForTokens, problemText, tokens } from './access.js';
import { allNodesAnswered, clusterNode, followCluster, nodesText, useCluster } from './cluster.js';
import { startListening, stopListening } from './listen.js';
import { $, byTestId, fmt, log, num, onPress, setUnavailable } from './page.js';
import { markFinalized, recordingNames, refreshRecordings, showLiveRecordings } from './recordings.js';
import { myPeer, talkEnded } from './talk.js';

const SPARK_SAMPLES = 60;
/** How often the server sends the peers' figures (`/events?interval=`), ms: a sparkline's sample. */
const EVENTS_INTERVAL_MS = 250;
const METER_FLOOR_DB = -60;

// ---------------------------------------------------------------- tiles

const tiles = {
  peers: byTestId('tile-peers'),
  rooms: byTestId('tile-rooms'),
  pool: byTestId('tile-pool'),
  poolBar: byTestId('tile-pool-bar'),
  lag: byTestId('tile-lag'),
  lagLabel: byTestId('tile-lag-label'),
  sessions: byTestId('tile-sessions'),
};

/** The workers' busy time at the previous figures: utilization is shown over the time between two, not since start. */
let lastPool = null;

/**
 * The workers' share of time busy since the previous figures (`busyMs` counts up), or, for the
 * first figures and after a restart (the count went back), what admission measured lately; the
 * since-start share only when neither is there. A server up for days read ~0 % under load.
 */
function recentUtilization(s) {
  const busy = num(s.pool?.busyMs);
  const threads = num(s.pool?.threads);
  const now = performance.now();
  const last = lastPool;
  lastPool = busy === null || !threads ? null : { busy, threads, at: now };
  if (last && lastPool && busy >= last.busy && threads === last.threads && now - last.at >= 200) return (busy - last.busy) / ((now - last.at) * threads);
  return num(s.admission?.workerUtilization) ?? num(s.pool?.utilization);
}

function renderServer(server) {
  const s = server ?? {};
  tiles.peers.textContent = fmt.int(s.peers);
  tiles.rooms.textContent = fmt.int(s.rooms);
  const utilization = recentUtilization(s);
  tiles.pool.textContent = fmt.percent(utilization === null ? null : Math.min(1, utilization));
  tiles.poolBar.style.width = `${Math.min(100, Math.max(0, (utilization ?? 0) * 100))}%`;
  // The main thread's recent load, as admission measures it; without admission, the delay since start.
  const loop = num(s.admission?.eventLoopUtilization);
  tiles.lagLabel.textContent = loop !== null ? 'Main thread busy' : 'Event-loop lag p99 (since start)';
  tiles.lag.textContent = loop !== null ? fmt.percent(loop) : fmt.ms(s.eventLoopDelayMs?.p99);
  tiles.sessions.textContent = `${fmt.int(s.sessionsStarted)} / ${fmt.int(s.sessionsEnded)}`;
}

// ---------------------------------------------------------------- peer cards

const peersEl = byTestId('peers');
const peersEmpty = byTestId('peers-empty');
// The hint names this server, as the page reached it.
byTestId('send-hint').textContent = `npx earshot send file.wav --url ${location.origin}/whip/room/peer`;
const cardTemplate = $('#peer-card');
/** peer id → { el, parts, loss: number[], jitter: number[] } */
const cards = new Map();

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
    node: part('peer-node'),
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
  el.setAttribute('aria-label', `Peer ${peer}`);
  const card = { el, parts, loss: [], jitter: [], recording: false, busy: false, listening: null };
  onPress(parts.record, () => toggleRecording(peer, card));
  onPress(parts.listen, () => void (card.listening ? stopListening(card) : startListening(peer, card)));
  return card;
}

/** dBFS → 0..100 % of the meter (−60 dBFS and below is empty). */
const meterPercent = (db) => (num(db) === null ? 0 : Math.min(100, Math.max(0, ((db - METER_FLOOR_DB) / -METER_FLOOR_DB) * 100)));

/**
 * Draws a sparkline, and names it for a screen reader with what a glance at it tells (its span,
 * its highest and its latest value): the chart is the dd of its dt, so it must say something.
 */
function drawSpark(polyline, values, floor, label, format) {
  const n = values.length;
  if (n > 0) {
    const seconds = Math.round((n * EVENTS_INTERVAL_MS) / 1000);
    polyline.ownerSVGElement?.setAttribute('aria-label', `${label}, last ${seconds} s: highest ${format(Math.max(...values))}, now ${format(values[n - 1])}`);
  }
  const max = Math.max(floor, ...values);
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
  // On a cluster, the node that runs the peer (this node's peers say so too).
  parts.node.hidden = typeof p.node !== 'string';
  parts.node.textContent = typeof p.node === 'string' ? ` · node ${p.node}${p.node === clusterNode ? ' (this one)' : ''}` : '';
  const mine = p.peer === myPeer;
  parts.you.hidden = !mine;
  el.classList.toggle('mine', mine);

  const audio = p.audio ?? {};
  // Before its first packet a stream has measured nothing: "not yet", not silence, nor a pipeline without
  // VAD. (Packets, not the measured seconds: a pipeline without a stats sink measures none.)
  const measured = (num(p.rtp?.packetsReceived) ?? 0) > 0 || (num(audio.seconds) ?? 0) > 0;
  const rms = num(audio.rmsDbfs);
  const peak = num(audio.peakDbfs);
  parts.level.dataset.rms = rms === null ? '' : String(rms);
  parts.level.dataset.peak = peak === null ? '' : String(peak);
  parts.level.setAttribute('aria-valuenow', String(Math.max(METER_FLOOR_DB, rms ?? METER_FLOOR_DB)));
  parts.rms.dataset.rms = parts.level.dataset.rms;
  parts.rms.style.clipPath = `inset(0 ${(100 - meterPercent(rms)).toFixed(1)}% 0 0)`;
  parts.peak.style.left = `calc(${meterPercent(peak).toFixed(1)}% - 2px)`;
  parts.peak.hidden = peak === null || peak <= METER_FLOOR_DB;
  parts.levelText.textContent = measured ? `RMS ${fmt.db(rms)} · peak ${fmt.db(peak)}` : 'no audio yet';

  // `speaking` is the server's debounced decision; without it, fall back to the raw VAD.
  const vad = num(audio.vad);
  const speaking = typeof audio.speaking === 'boolean' ? audio.speaking : vad === null ? null : vad >= 0.5;
  parts.speaking.dataset.active = speaking === null ? 'unknown' : String(speaking);
  parts.speakingLabel.textContent = speaking !== null ? (speaking ? 'speaking' : 'silent') : measured ? 'no VAD' : 'not yet';
  parts.speaking.title = vad !== null ? `Voice activity ${Math.round(vad * 100)} %` : measured ? 'No voice activity (the pipeline has no denoise stage)' : 'Not measured yet (no audio processed)';

  const rtp = p.rtp ?? {};
  parts.bitrate.textContent = fmt.bitrate(rtp.bitrate);
  // The last 10 s: a start-up spike would otherwise dominate the since-start figures for minutes.
  const latency = p.processing?.recentLatencyMs ?? p.processing?.latencyMs ?? {};
  parts.latency.textContent = num(latency.p50) === null && num(latency.p99) === null ? '–' : `${fmt.ms(latency.p50)} / ${fmt.ms(latency.p99)}`;
  pushSample(card.loss, rtp.lossRatio);
  pushSample(card.jitter, num(rtp.jitter) === null ? null : rtp.jitter * 1000);
  parts.loss.textContent = fmt.percent(rtp.lossRatio, 1);
  parts.jitter.textContent = fmt.ms(num(rtp.jitter) === null ? null : rtp.jitter * 1000);
  drawSpark(parts.lossSpark, card.loss, 0.02, 'Loss', (v) => fmt.percent(v, 1));
  drawSpark(parts.jitterSpark, card.jitter, 20, 'Jitter', (v) => fmt.ms(v));

  const rec = p.recording && typeof p.recording === 'object' ? p.recording : null;
  card.recording = rec?.state === 'recording';
  parts.recInfo.dataset.recording = String(card.recording);
  // A failed recording says why: its code on the card, the whole message on hover.
  const why = rec?.state === 'failed' && typeof rec.code === 'string' ? ` (${rec.code})` : '';
  parts.recInfo.textContent = rec ? `${card.recording ? '' : `${rec.state ?? 'stopped'}${why} · `}${rec.name ?? ''} · ${fmt.seconds(rec.seconds)}` : 'not recording';
  parts.recInfo.title = rec ? `${rec.name ?? ''}${typeof rec.error === 'string' ? `: ${rec.error}` : ''}` : '';
  if (!card.busy) {
    parts.record.textContent = card.recording ? 'Stop recording' : 'Record';
    parts.record.dataset.recording = String(card.recording);
    setUnavailable(parts.record, state !== 'connected' && state !== 'connecting');
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
  showLiveRecordings(list.filter((p) => p.recording?.state === 'recording' && typeof p.recording.name === 'string').map((p) => (typeof p.node === 'string' ? { ...p.recording, node: p.node } : p.recording)));
  for (const [peer, card] of cards) {
    if (seen.has(peer)) continue;
    if (card.listening) void stopListening(card, '', true);
    card.el.remove();
    cards.delete(peer);
  }
  peersEmpty.hidden = cards.size > 0;
}

async function toggleRecording(peer, card) {
  const { parts } = card;
  const stopping = card.recording;
  card.busy = true;
  setUnavailable(parts.record, true);
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
    setUnavailable(parts.record, false);
  }
}

// ---------------------------------------------------------------- live events

const connEl = byTestId('connection');

function setConnection(state, text) {
  connEl.dataset.state = state;
  connEl.textContent = text;
  // While the figures are not coming in, the tiles and cards show the last ones received: dimmed, so nobody reads them as live.
  document.body.dataset.connection = state;
}

/**
 * GET /events over fetch, not EventSource: EventSource cannot send the admin
 * token. Parses the text/event-stream framing itself and reconnects after
 * 2 s (what the server asks for) when the stream ends or fails.
 */
async function connect() {
  let reconnecting = false;
  const handlers = new Map();
  const on = (type, fn) => handlers.set(type, fn);
  // On a cluster node the figures come from the cluster's view (followCluster): this stream only feeds the log.
  const setState = (state, text) => {
    if (!clusterNode) setConnection(state, text);
  };
  on('stats', (e) => {
    if (clusterNode) return;
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
      talkEnded(s.peer, s.reason);
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
      const res = await api(`/events?interval=${EVENTS_INTERVAL_MS}`, { headers: { Accept: 'text/event-stream' }, cache: 'no-store' });
      if (!res.ok || !res.body) throw new Error(await problemText(res));
      setState('live', 'live');
      // Back after a break (a restart, a network drop): what was recorded meanwhile, with links the
      // server signs now (a restarted server's key is new: the old links no longer open).
      if (reconnecting) void refreshRecordings();
      reconnecting = true;
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

// ---------------------------------------------------------------- a cluster's view

/** Other nodes' live peers at the last poll (peer → { room, node }): their starts and ends go to the log. */
let elsewhere = null;
/** This page's own Talk peer, once seen live on the cluster. */
let mineSeen = null;

function renderCluster(doc) {
  setConnection('live', `live · ${nodesText(doc.server)}`);
  renderServer(doc.server);
  renderPeers(doc.peers);
  const live = (Array.isArray(doc.peers) ? doc.peers : []).filter((p) => p && typeof p.peer === 'string' && p.state !== 'ended');
  const complete = allNodesAnswered(doc.server);
  // This node's sessions are in the log from its own events; other nodes' are seen here, a poll at a time.
  const now = new Map(live.filter((p) => p.node !== clusterNode).map((p) => [p.peer, { room: p.room, node: p.node }]));
  if (elsewhere) {
    for (const [peer, p] of now) if (!elsewhere.has(peer)) log(`${peer} in ${p.room ?? '?'} started on node ${p.node ?? '?'}`, 'started');
    if (complete) for (const [peer, p] of elsewhere) if (!now.has(peer)) log(`${peer} in ${p.room ?? '?'} ended on node ${p.node ?? '?'}`, 'ended');
  }
  // A node that did not answer keeps its peers until it does (they are not known to have ended).
  elsewhere = complete || !elsewhere ? now : new Map([...elsewhere, ...now]);
  // The page's own session on another node: its end is not among this node's events.
  if (myPeer !== null && live.some((p) => p.peer === myPeer)) mineSeen = myPeer;
  else if (mineSeen !== null && complete) {
    // Gone from every node: ended (by the page's Stop, or by the server, which then stops the page too).
    talkEnded(mineSeen, '');
    mineSeen = null;
    void refreshRecordings();
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

/**
 * Asks for the tokens up front when /health says the server needs them and
 * this tab has none yet, so the page never fires requests that fail.
 */
async function start() {
  try {
    const health = await (await fetch('/health', { cache: 'no-store' })).json();
    const needsAdmin = health?.access?.admin === 'token' && !tokens.admin;
    if (needsAdmin) await askForTokens();
    useCluster(health?.cluster);
  } catch {
    // /health unreadable: the API calls below ask for tokens if they get 401
  }
  void connect();
  if (clusterNode) {
    setConnection('connecting', 'connecting to the cluster…');
    void followCluster(renderCluster, (message) => {
      log(`cluster: ${message}`, 'ended');
      setConnection('connecting', 'cluster unavailable, retrying…');
    });
  }
  void refreshRecordings();
}

void start();
