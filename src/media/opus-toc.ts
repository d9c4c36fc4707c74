/**
 * Duration of an Opus packet from its TOC byte (RFC 6716 §3.1), read on the main
 * thread so that lost packets and gaps can be given exact media positions without
 * decoding anything there.
 */

/** Samples at 48 kHz per frame for each of the 32 TOC configurations. */
const FRAME_SAMPLES: readonly number[] = [
  // SILK NB, MB, WB: 10, 20, 40, 60 ms
  480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880,
  // Hybrid SWB, FB: 10, 20 ms
  480, 960, 480, 960,
  // CELT NB, WB, SWB, FB: 2.5, 5, 10, 20 ms
  120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960,
];

/** Samples per channel at 48 kHz in the packet, or 0 if the packet is malformed. */
export function opusPacketSamples(packet: Uint8Array): number {
  if (packet.length < 1) return 0;
  const toc = packet[0];
  const perFrame = FRAME_SAMPLES[toc >> 3];
  let frames: number;
  switch (toc & 0x3) {
    case 0:
      frames = 1;
      break;
    case 1:
    case 2:
      frames = 2;
      break;
    default:
      if (packet.length < 2) return 0;
      frames = packet[1] & 0x3f;
  }
  const total = perFrame * frames;
  return total > 5760 ? 0 : total; // RFC 6716: at most 120 ms per packet
}

/** True when the TOC byte says the packet is coded stereo. */
export function opusPacketIsStereo(packet: Uint8Array): boolean {
  return packet.length > 0 && (packet[0] & 0x4) !== 0;
}

/**
 * True when the packet's own encoder marked it as carrying no voice: a mono,
 * one-frame (code 0) packet that is
 * - SILK or hybrid with every SILK voice-activity flag 0. The flags are the
 *   first symbols of the range-coded data (RFC 6716 §4.2.3), each coded with
 *   probability ½, so they are the top bits of the byte after the TOC: one per
 *   SILK frame (a 40 ms SILK packet has two, a 60 ms one three). libopus codes
 *   the comfort-noise updates of a quiet room this way;
 * - CELT-only with the silence flag set: the first symbol (§4.3), coded with
 *   probability 1/32768, so its 15 top bits are all ones. libopus codes
 *   digital silence (a muted microphone) this way, e.g. `f8 ff fe`.
 * False when the packet cannot say (stereo, several frames, too short): a
 * caller treats those as voice.
 */
export function opusPacketInactive(packet: Uint8Array): boolean {
  if (packet.length < 2) return false;
  const toc = packet[0];
  if ((toc & 0x7) !== 0) return false; // stereo, or more than one frame
  const config = toc >> 3;
  if (config >= 16) return packet.length >= 3 && packet[1] === 0xff && (packet[2] & 0xfe) === 0xfe;
  const silkFrames = FRAME_SAMPLES[config] / 960; // 0.5 (10 ms), 1, 2 or 3
  const flags = silkFrames <= 1 ? 0x80 : silkFrames === 2 ? 0xc0 : 0xe0;
  return (packet[1] & flags) === 0;
}
