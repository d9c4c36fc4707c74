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
