// Listen on a peer card: the peer's processed audio over WHEP, played in the page.

import { askForTokens, authHeaders, problemText } from './access.js';
import { fmt, num, setUnavailable } from './page.js';
import { iceGatheringComplete } from './webrtc.js';

/**
 * Plays a peer's processed audio: a receive-only offer POSTed to /whep/:peer
 * (admin token), the answer applied, the track played in an <audio> element.
 * While it plays, the card shows what this browser's WebRTC stack reports
 * receiving (packets, audio level), read from getStats() every second.
 */
export async function startListening(peer, card) {
  const { parts } = card;
  setUnavailable(parts.listen, true);
  parts.error.hidden = true;
  const pc = new RTCPeerConnection();
  const audio = new Audio();
  audio.autoplay = true;
  try {
    const { receiver } = pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addEventListener('track', (e) => {
      audio.srcObject = e.streams[0] ?? new MediaStream([e.track]);
      void audio.play().catch(() => undefined);
    });
    await pc.setLocalDescription({ type: 'offer', sdp: askForStereo((await pc.createOffer()).sdp) });
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
    // The server ends a listener (the peer published again, a DELETE elsewhere, shutdown) with a DTLS
    // close_notify: the transport closes at once, where connectionState takes 15 s or more to fail.
    const transport = receiver.transport;
    transport?.addEventListener('statechange', () => {
      if (card.listening?.pc === pc && transport.state === 'closed') void stopListening(card, 'The server ended the listening connection.', true);
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
    setUnavailable(parts.listen, false);
  }
}

/**
 * The offer with `stereo=1` on its Opus line: a browser decodes Opus to two
 * channels only when its own offer asks for them (RFC 7587 §6.1), so a stereo
 * pipeline would otherwise play as mono.
 */
function askForStereo(sdp) {
  const pt = /a=rtpmap:(\d+) opus\/48000/i.exec(sdp)?.[1];
  if (pt === undefined) return sdp;
  return sdp.replace(new RegExp(`(a=fmtp:${pt} [^\\r\\n]*)`), (line) => (/(^|[; ])stereo=1/.test(line) ? line : `${line};stereo=1`));
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

/**
 * Stops listening on `card`. `peerEnded`: the peer's session is over, and the
 * server ended its listeners with it: there is nothing left to DELETE (it
 * would be a 404, which the browser logs as an error).
 */
export async function stopListening(card, reason = '', peerEnded = false) {
  const listening = card.listening;
  if (!listening) return;
  card.listening = null;
  clearInterval(listening.timer);
  const { parts } = card;
  parts.listen.textContent = 'Listen';
  parts.listen.dataset.listening = 'false';
  parts.listenStatus.hidden = true;
  listening.audio.srcObject = null;
  // 404 if the server ended it already (the peer's stream ended in the meantime).
  if (!peerEnded) await fetch(listening.location, { method: 'DELETE', headers: authHeaders('admin') }).catch(() => undefined);
  listening.pc.close();
  if (reason) {
    parts.error.textContent = reason;
    parts.error.hidden = false;
  }
}
