// The "Talk" button: publishes this browser's microphone over WHIP as a peer of
// room "dashboard", and ends the session when stopped or when the page goes away.

import { askForTokens, authHeaders, problemText, refusalText, tokens } from './access.js';
import { byTestId, onPress, setUnavailable } from './page.js';
import { markFinalized, refreshRecordings } from './recordings.js';
import { iceGatheringComplete, randomPeerId } from './webrtc.js';

const talkButton = byTestId('talk-button');
const talkStatus = byTestId('talk-status');
/** The live publication: { pc, stream, location, peer } */
let talk = null;
/** The peer this page publishes as (its card says "you"), once it has talked. */
export let myPeer = null;

function setTalk(state, text = '', error = false) {
  talkButton.dataset.state = state;
  talkButton.textContent = state === 'live' ? 'Stop' : state === 'busy' ? '…' : 'Talk';
  setUnavailable(talkButton, state === 'busy');
  talkStatus.textContent = text;
  talkStatus.classList.toggle('error', error);
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
      await askForTokens(await refusalText(res, tokens.publish || tokens.admin));
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

/**
 * The server ended this page's session (media timeout, replaced, shutdown,
 * ended over the API): the page stops too, at once, rather than showing
 * "Live" until ICE gives up.
 */
export function talkEnded(peer, reason) {
  const current = talk;
  if (!current || current.peer !== peer) return;
  talk = null;
  current.pc.close();
  for (const t of current.stream.getTracks()) t.stop();
  setTalk('idle', `The server ended this session${reason ? ` (${reason})` : ''}; the recording is below.`);
}

onPress(talkButton, () => void (talk ? stopTalk() : startTalk()));
// A page that goes away ends its session right away instead of at the media timeout.
window.addEventListener('pagehide', () => {
  if (talk) fetch(talk.location, { method: 'DELETE', keepalive: true, headers: authHeaders('publish') }).catch(() => undefined);
});
