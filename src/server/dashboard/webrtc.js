// What the dashboard's WHIP publisher (talk.js) and WHEP player (listen.js) share.

const ICE_GATHERING_TIMEOUT_MS = 3000;

/** The server does not trickle: the offer must hold every candidate. */
export function iceGatheringComplete(pc) {
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

export function randomPeerId() {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `web-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}
