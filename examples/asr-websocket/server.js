/**
 * A stand-in for a speech recognizer: a WebSocket server that accepts earshot's
 * `websocket` sink (docs/websocket.md) and prints what it receives — the start
 * message, one line per second of audio with its level, speech events, and the
 * end message. Run: ASR_TOKEN=dev-secret node examples/asr-websocket/server.js
 *
 * Replace the body of `onAudio` with a call to your recognizer: `samples` is one
 * frame of 16-bit PCM at `format.sampleRate`.
 */
import { WebSocketServer } from 'ws';

const port = Number(process.env.PORT ?? 9000);
const token = process.env.ASR_TOKEN;
const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  // Refuse connections without the expected token (earshot sends it from its own EARSHOT_SINK_ASR_TOKEN).
  verifyClient: ({ req }) => token === undefined || req.headers.authorization === `Bearer ${token}`,
});
console.log(`listening on ws://127.0.0.1:${port}/listen${token ? ' (token required)' : ''}`);

server.on('connection', (socket) => {
  let format;
  let samples = 0;
  let energy = 0;
  let name = '?';
  const onAudio = (pcm) => {
    for (const v of pcm) energy += (v / 32768) ** 2;
    samples += pcm.length;
    const perSecond = format.sampleRate * format.channels;
    if (samples % perSecond < pcm.length) {
      const db = 10 * Math.log10(energy / perSecond + 1e-12);
      console.log(`${name}: ${(samples / perSecond).toFixed(0)} s received, level ${db.toFixed(1)} dBFS`);
      energy = 0;
    }
  };
  socket.on('message', (data, isBinary) => {
    if (isBinary) {
      // Little-endian 16-bit samples, channels interleaved (copy: `data` may not be 2-byte aligned).
      const bytes = new Uint8Array(data);
      onAudio(new Int16Array(bytes.slice().buffer));
      return;
    }
    const message = JSON.parse(data.toString());
    if (message.type === 'start') {
      format = message.format;
      name = `${message.room}/${message.peer}`;
      console.log(`${name}: start`, JSON.stringify(message));
    } else {
      console.log(`${name}: ${message.type}`, JSON.stringify(message));
    }
  });
  socket.on('close', () => console.log(`${name}: connection closed`));
});
