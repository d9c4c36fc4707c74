/**
 * The capacity bench's yardstick: a bare werift receiver answering WHIP POSTs
 * on loopback the way earshot does (ICE-lite, loopback host candidate only, no
 * STUN; see src/rtc/ice-config.ts), with nothing of earshot's behind the
 * track. Two modes:
 *
 * - `wav`: decodes each Opus packet on the main thread (our libopus binding,
 *   wasm/opus.ts) and writes 16-bit WAV (32 KiB chunks written asynchronously,
 *   header rewritten every second and at the end): what a minimal recording
 *   server costs, no pool, no sinks, no statistics.
 * - `rtp`: receives and counts packets only (bare werift: ICE, DTLS, SRTP, RTP).
 *
 * Run as a child of the bench: `node --import tsx --import ./bench/probe.ts
 * bench/baseline-receiver.ts --port 18940 --mode wav --dir /tmp/x`. Prints
 * `LISTENING <port>` once it serves; SIGTERM finalizes every file and exits.
 * Routes: `POST /whip/:room/:peer` (SDP offer → 201 + answer + Location),
 * `DELETE /whip/session/:id`, `GET /health`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { loadOpus, OpusDecoder, OPUS_MAX_FRAME_SAMPLES } from '../wasm/opus.js';
import { disableImplicitStun, iceConfig, iceGatheringComplete } from '../src/rtc/ice-config.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: '18940' }, mode: { type: 'string', default: 'wav' }, dir: { type: 'string', default: '.' } } });
const mode = values.mode === 'rtp' ? 'rtp' : 'wav';
const dir = values.dir!;
if (mode === 'wav') loadOpus();

const CHUNK = 32 * 1024;

/** One stream's WAV file: s16 mono 48 kHz, chunks written in order, header every second. */
class WavOut {
  #fh: Promise<FileHandle>;
  #chunk = new Int16Array(CHUNK / 2);
  #used = 0; // samples
  #dataBytes = 0;
  #writing: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout;

  constructor(path: string) {
    this.#fh = open(path, 'w');
    this.#writing = this.#fh.then((fh) => fh.write(header(0), 0, 44, 0));
    this.#timer = setInterval(() => this.#header(), 1000);
    this.#timer.unref();
  }

  append(pcm: Float32Array, n: number): void {
    let chunk = this.#chunk;
    for (let i = 0; i < n; i++) {
      const v = pcm[i];
      chunk[this.#used++] = v >= 1 ? 32767 : v <= -1 ? -32768 : Math.round(v * 32767);
      if (this.#used === chunk.length) {
        this.#flush();
        chunk = this.#chunk;
      }
    }
  }

  #flush(): void {
    if (this.#used === 0) return;
    const buf = Buffer.from(this.#chunk.buffer, 0, this.#used * 2);
    const at = 44 + this.#dataBytes;
    this.#dataBytes += buf.length;
    this.#chunk = new Int16Array(CHUNK / 2);
    this.#used = 0;
    this.#writing = this.#writing.then(() => this.#fh).then((fh) => fh.write(buf, 0, buf.length, at));
  }

  #header(): void {
    const bytes = this.#dataBytes;
    this.#writing = this.#writing.then(() => this.#fh).then((fh) => fh.write(header(bytes), 0, 44, 0));
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#flush();
    this.#header();
    await this.#writing;
    await (await this.#fh).close();
  }
}

function header(dataBytes: number): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(36 + dataBytes, 4);
  h.write('WAVEfmt ', 8, 'ascii');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(48000, 24);
  h.writeUInt32LE(96000, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(dataBytes, 40);
  return h;
}

interface Session {
  pc: RTCPeerConnection;
  packets: number;
  /** Idempotent: closing the peer connection reports 'closed', which closes again. */
  close(): Promise<void>;
}

const sessions = new Map<string, Session>();
let counter = 0;

async function answer(peer: string, offer: string): Promise<{ id: string; sdp: string }> {
  const pc = new RTCPeerConnection({
    ...iceConfig({ hostAddresses: ['127.0.0.1'] }),
    iceLite: true,
    codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, parameters: 'minptime=10;useinbandfec=1' })] },
  });
  const id = `${++counter}`;
  const decoder = mode === 'wav' ? new OpusDecoder(1) : undefined;
  const pcm = new Float32Array(OPUS_MAX_FRAME_SAMPLES);
  const wav = mode === 'wav' ? new WavOut(join(dir, `${peer}-${id}.wav`)) : undefined;
  let closing: Promise<void> | undefined;
  const session: Session = {
    pc,
    packets: 0,
    close() {
      closing ??= (async () => {
        sessions.delete(id);
        await pc.close().catch(() => {});
        decoder?.close();
        await wav?.close();
      })();
      return closing;
    },
  };
  pc.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp) => {
      session.packets++;
      if (!decoder || !wav || closing) return;
      try {
        const n = decoder.decode(rtp.payload, pcm);
        wav.append(pcm, n);
      } catch {
        // a corrupt packet: skipped (no concealment in the yardstick)
      }
    });
  });
  pc.connectionStateChange.subscribe((s) => {
    if (s === 'failed' || s === 'closed') void session.close();
  });
  await pc.setRemoteDescription({ type: 'offer', sdp: offer });
  const local = await pc.createAnswer();
  disableImplicitStun(pc, []);
  await pc.setLocalDescription(local);
  await iceGatheringComplete(pc);
  sessions.set(id, session);
  return { id, sdp: pc.localDescription!.sdp };
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (s += c));
    req.on('end', () => resolve(s));
    req.on('error', reject);
  });
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  const parts = url.pathname.split('/').filter(Boolean);
  if (req.method === 'GET' && url.pathname === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sessions: sessions.size }));
    return;
  }
  if (req.method === 'POST' && parts[0] === 'whip' && parts.length === 3) {
    const { id, sdp } = await answer(parts[2], await body(req));
    res.writeHead(201, { 'content-type': 'application/sdp', location: `/whip/session/${id}` }).end(sdp);
    return;
  }
  if (req.method === 'DELETE' && parts[0] === 'whip' && parts[1] === 'session') {
    const s = sessions.get(parts[2]);
    await s?.close();
    res.writeHead(s ? 200 : 404).end();
    return;
  }
  res.writeHead(404).end();
}

const server = createServer((req, res) => {
  handle(req, res).catch((e: Error) => {
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(e.message);
  });
});
server.listen(Number(values.port), '127.0.0.1', () => process.stdout.write(`LISTENING ${values.port}\n`));
process.on('SIGTERM', () => {
  server.close();
  void Promise.all([...sessions.values()].map((s) => s.close())).then(() => process.exit(0));
});
